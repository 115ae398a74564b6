"""``PrivacyService``: the privacy operations the API and the CLI offer, on external ids.

Every method takes the caller's own user id and maps it to the stored one
(:meth:`user_key`, a keyed HMAC when pseudonymisation is on), so callers never see or
need the stored form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attune.config import Settings
from attune.errors import NotFoundError
from attune.privacy.consent import (
    API_SOURCE,
    ConsentIn,
    ConsentState,
    default_consent,
    drop_live_state,
    effective,
)
from attune.privacy.erasure import ErasureReport, ForgettingModels, erase_person
from attune.privacy.export import export_person
from attune.privacy.pseudonyms import Pseudonymizer
from attune.privacy.rejected import RejectedFiles
from attune.store.factory import Stores


class PrivacyService:
    """Consent, erasure, export and id mapping for one deployment."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        models: ForgettingModels | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        """``settle``: writes what the serving process holds back (its queue of logged
        lists), so that an erasure's last sweep finds it."""
        self.settings = settings
        self.stores = stores
        self.models = models
        self.settle = settle
        self.user_key = Pseudonymizer.from_settings(settings)
        """External user (or anonymous) id → the id stored for it."""

    def consent(self, user_id: str) -> ConsentState:
        """The person's consent now: their record, or the configured default."""
        return effective(self.stores.consent.get(self.user_key(user_id)), self.settings)

    def set_consent(self, user_id: str, update: ConsentIn) -> ConsentState:
        """Record a consent change (fields left out keep their current value). The
        person's cached answers go at once (the next one follows the new consent); with
        personalisation refused, so does their live session."""
        stored_id = self.user_key(user_id)
        stored = self.stores.consent.set(
            stored_id,
            tracking=update.tracking,
            personalization=update.personalization,
            source=API_SOURCE,
            default=default_consent(self.settings),
        )
        state = effective(stored, self.settings)
        drop_live_state(self.stores, stored_id, not state.personalization)
        return state

    def may_personalize(self, stored_id: str) -> bool:
        """Whether answers for the person stored as ``stored_id`` may be personalised."""
        return effective(self.stores.consent.get(stored_id), self.settings).personalization

    def erase(self, user_id: str, actor: str | None = None) -> ErasureReport:
        """Erase everything held about the person, models included (idempotent)."""
        return erase_person(
            self.stores,
            self.user_key(user_id),
            models=self.models,
            workspace=self.settings.workspace,
            actor=actor,
            rejected=RejectedFiles(self.settings.workspace_dir, self.user_key),
            settle=self.settle,
        )

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything held about the person as one JSON-ready document.

        Raises:
            NotFoundError: nothing is held about them.
        """
        document = export_person(self.stores, self.user_key(user_id), user_id)
        if document is None:
            raise NotFoundError(f"nothing is held about user {user_id!r}")
        return document
