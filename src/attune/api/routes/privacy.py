"""Privacy routes: consent, erasure and export of one person's data.

Paths take the caller's own user id; with pseudonymisation on it is mapped to the
stored id by :class:`attune.privacy.service.PrivacyService`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from attune.api.deps import PrivacyDep, RecommendationsDep
from attune.api.routes._common import UserIdPath, iso
from attune.privacy.consent import ConsentIn, ConsentState

router = APIRouter(tags=["privacy"])


class ConsentOut(BaseModel):
    user_id: str
    tracking: bool = Field(description="Events of this person are stored with their ids")
    personalization: bool = Field(description="Answers are personalised; training uses them")
    source: str = Field(
        description="api or event (who set it last); default: no record, so the "
        "configured default applies (consent_required)"
    )
    updated_at: datetime | None


class ErasureOut(BaseModel):
    user_id: str
    erased: dict[str, int] = Field(description="Rows, keys or entries removed per store kind")
    identities: int = Field(description="Stored ids erased: the user id and linked anonymous ids")
    models: dict[str, str] = Field(description="What each serving model did to forget them")


def _consent_out(user_id: str, state: ConsentState) -> ConsentOut:
    return ConsentOut(
        user_id=user_id,
        tracking=state.tracking,
        personalization=state.personalization,
        source=state.source,
        updated_at=iso(state.updated_at),
    )


def _actor(request: Request) -> str | None:
    """The API key id of the caller, when authentication established one."""
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "key_id", None)


@router.put(
    "/v1/users/{user_id}/consent", response_model=ConsentOut, summary="Set a person's consent"
)
def put_consent(user_id: UserIdPath, consent: ConsentIn, privacy: PrivacyDep) -> ConsentOut:
    """Partial updates: a field left out keeps its value (or the configured default).

    Without tracking consent the person's events are not stored (or stored anonymised);
    without personalisation consent they get non-personalised answers and no model
    learns from their events.
    """
    return _consent_out(user_id, privacy.set_consent(user_id, consent))


@router.get(
    "/v1/users/{user_id}/consent", response_model=ConsentOut, summary="Read a person's consent"
)
def get_consent(user_id: UserIdPath, privacy: PrivacyDep) -> ConsentOut:
    """The stored consent, or (``source: default``) what applies without a record."""
    return _consent_out(user_id, privacy.consent(user_id))


@router.delete(
    "/v1/users/{user_id}",
    response_model=ErasureOut,
    summary="Erase everything held about a person",
)
def erase_user(
    user_id: UserIdPath, privacy: PrivacyDep, recommendations: RecommendationsDep, request: Request
) -> ErasureOut:
    """Removes the person's events (and those of anonymous ids linked to them), profile,
    consent, preferences, live session, cache entries and recommendation logs, and
    removes them from the serving models at once. Idempotent: erasing someone unknown
    removes nothing and still answers 200."""
    recommendations.log.flush()  # log rows still queued for them are written, then erased
    report = privacy.erase(user_id, actor=_actor(request))
    return ErasureOut(
        user_id=user_id,
        erased=report.erased,
        identities=report.identities,
        models=report.models,
    )


@router.get(
    "/v1/users/{user_id}/export",
    summary="Export everything held about a person (JSON)",
    responses={404: {"description": "Nothing is held about this person"}},
)
def export_user(user_id: UserIdPath, privacy: PrivacyDep) -> dict[str, Any]:
    """Profile, consent, preferences, every event and the recommendations shown, as
    one JSON document (times ISO 8601 UTC)."""
    return privacy.export(user_id)
