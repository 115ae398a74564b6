"""API key tokens: generation, parsing and hashing; the stored form of a key.

A token reads ``atk_sk_<key_id>_<secret>`` (secret key) or ``atk_pk_<key_id>_<secret>``
(public key): a readable prefix that secret scanners and people recognise, the key id
that finds the row in one indexed read, and 256 random bits. Only the SHA-256 of the
whole token is stored (a random 256-bit secret needs no slow hash), and it is compared
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from attune.auth.principal import KeyKind

PREFIX = {"secret": "atk_sk_", "public": "atk_pk_"}
KEY_ID_HEX = 16
TOKEN_PATTERN = re.compile(r"^atk_(sk|pk)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
MAX_TOKEN_LENGTH = 512
"""Longer bearer values are refused before any hashing or lookup."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored and listed: everything but the secret.

    ``rate_per_second`` and ``burst`` are None when the key follows the server's defaults.
    Times are UTC Unix seconds.
    """

    key_id: str
    workspace: str
    name: str
    kind: KeyKind
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    rate_per_second: float | None = None
    burst: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class ParsedToken:
    kind: KeyKind
    key_id: str


def new_token(kind: KeyKind) -> tuple[str, str]:
    """A fresh ``(key_id, token)`` pair for a key of ``kind``."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    return key_id, f"{PREFIX[kind]}{key_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> ParsedToken | None:
    """The kind and key id a token claims, or None when it is not shaped like a token."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    match = TOKEN_PATTERN.fullmatch(token)
    if match is None:
        return None
    return ParsedToken(kind="secret" if match[1] == "sk" else "public", key_id=match[2])


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token_hash: str, stored_hash: str) -> bool:
    """Constant-time comparison of two token hashes."""
    return hmac.compare_digest(token_hash.encode(), stored_hash.encode())
