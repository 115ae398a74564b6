"""The deployment's master secret and what is derived from it, never stored.

* A public key's **signing secret** is HMAC-SHA256(master, key id): shown once when the
  key is created, re-derivable by the server, never written anywhere.
* A **user token** is hex HMAC-SHA256(signing secret, user id), computed by the
  customer's backend for its signed-in user; a browser holding the public key and the
  token may act for that user only.
* An **audit target** for a person is a keyed hash of their id, so the audit log can say
  "this person was erased" without holding the id it erased.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from attune.config import Settings
from attune.errors import ConfigurationError

log = logging.getLogger(__name__)

SECRET_FILE = "secret"
SIGNING_PREFIX = "atk_us_"


def _hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def master_secret(settings: Settings) -> bytes:
    """``ATTUNE_SECRET_KEY``, else ``<data_dir>/secret`` (created once, mode 0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); chmod 600 it", path, mode)
    value = path.read_text().strip()
    if len(value) < 32:
        raise ConfigurationError(f"{path} holds no usable secret; remove it to generate one")
    return value.encode()


def _create_secret_file(path: Path) -> None:
    """Write the secret beside ``path``, then link it there: it appears whole or not at
    all (a reader never meets an empty file), and never replaces one another process or
    thread created first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32) + "\n"
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        try:
            os.link(written, path)
        except FileExistsError:  # created first elsewhere: use theirs
            pass
        except OSError:  # a file system without hard links: create it in place
            with contextlib.suppress(FileExistsError):
                _write_new(path, value)
    finally:
        os.unlink(written)


def _write_new(path: Path, value: str) -> None:
    """Create ``path`` holding ``value`` unless it exists (FileExistsError then)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def signing_secret(master: bytes, key_id: str) -> str:
    """The user-token signing secret of public key ``key_id``."""
    return SIGNING_PREFIX + _hmac_hex(master, f"attune/user-token/{key_id}")


def user_token(signing: str, user_id: str) -> str:
    """What the customer's backend computes for ``user_id``: hex HMAC-SHA256."""
    return _hmac_hex(signing.encode(), user_id)


def verify_user_token(signing: str, user_id: str, token: str) -> bool:
    """Whether ``token`` was made for ``user_id`` with ``signing`` (constant time)."""
    return hmac.compare_digest(user_token(signing, user_id).encode(), token.encode())


def audit_user_target(master: bytes, user_id: str) -> str:
    """A keyed, stable pseudonym of ``user_id`` for audit entries (never the id itself)."""
    return "user:" + _hmac_hex(master, f"attune/audit-user/{user_id}")[:32]
