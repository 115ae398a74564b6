"""Pseudonymisation of user ids at ingestion: a keyed HMAC replaces each id.

With ``pseudonymize_user_ids`` on, every user and anonymous id is stored as
``p-`` + the first 40 hex digits (160 bits) of HMAC-SHA256(``pseudonym_key``, id). The
mapping is deterministic, so callers keep using their own ids: every route that takes a
user id maps it the same way before it touches a store. Without the key the stored ids
cannot be turned back into people's ids, nor can a guessed id be tested against them.
"""

from __future__ import annotations

import hashlib
import hmac

from attune.config import Settings

PREFIX = "p-"
DIGEST_HEX = 40


class Pseudonymizer:
    """Maps an external user id to the id stored for it (itself when switched off)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymizer:
        if not settings.pseudonymize_user_ids or settings.pseudonym_key is None:
            return cls(None)
        return cls(settings.pseudonym_key.get_secret_value().encode())

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def __call__(self, external_id: str) -> str:
        """The stored id of ``external_id``."""
        if self._key is None:
            return external_id
        digest = hmac.new(self._key, external_id.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:DIGEST_HEX]

    def optional(self, external_id: str | None) -> str | None:
        return None if external_id is None else self(external_id)
