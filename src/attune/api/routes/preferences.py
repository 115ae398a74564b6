"""``/v1/users/{id}/preferences``: what a person told us (likes, blocks, opt-out)."""

from __future__ import annotations

from fastapi import APIRouter

from attune.api.deps import RecommendationsDep, ServicesDep, StoresDep
from attune.api.routes._common import UserIdPath
from attune.engine.preferences import Preferences, PreferencesPatch

router = APIRouter(tags=["preferences"])


def _current(stores: StoresDep, user_id: str) -> Preferences:
    stored = stores.preferences.get(user_id)
    return Preferences.model_validate(stored) if stored else Preferences()


@router.get(
    "/v1/users/{user_id}/preferences",
    response_model=Preferences,
    summary="A person's stated preferences",
)
def get_preferences(user_id: UserIdPath, stores: StoresDep, services: ServicesDep) -> Preferences:
    """Defaults (nothing liked or blocked, personalisation on) when none were set."""
    return _current(stores, services.user_key(user_id))


@router.put(
    "/v1/users/{user_id}/preferences",
    response_model=Preferences,
    summary="Set a person's preferences",
)
def put_preferences(
    user_id: UserIdPath,
    body: Preferences,
    stores: StoresDep,
    services: ServicesDep,
    service: RecommendationsDep,
) -> Preferences:
    """Replaces the whole set. Takes effect on the person's next request: blocked items
    and categories never appear (a category is matched whatever its case: "comedy" is
    stored as the catalog's "Comedy"), liked categories and items lead a newcomer's list and
    are favoured after, ``personalization: false`` stops the use of their history."""
    stored_id = services.user_key(user_id)
    body = body.spelled_as(service.engine.catalog.spellings())
    stores.preferences.put(stored_id, body.model_dump(mode="json"))
    service.forget_cached(stored_id)
    return body


@router.patch(
    "/v1/users/{user_id}/preferences",
    response_model=Preferences,
    summary="Change some of a person's preferences",
)
def patch_preferences(
    user_id: UserIdPath,
    body: PreferencesPatch,
    stores: StoresDep,
    services: ServicesDep,
    service: RecommendationsDep,
) -> Preferences:
    """Only the fields given change; the rest keep their values."""
    stored_id = services.user_key(user_id)
    updated = body.apply(_current(stores, stored_id))
    updated = updated.spelled_as(service.engine.catalog.spellings())
    stores.preferences.put(stored_id, updated.model_dump(mode="json"))
    service.forget_cached(stored_id)
    return updated
