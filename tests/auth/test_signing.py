"""The master secret, public keys' signing secrets, user tokens and audit pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import stat

from attune.auth.signing import (
    audit_user_target,
    master_secret,
    signing_secret,
    user_token,
    verify_user_token,
)
from attune.config import Settings


def test_master_secret_is_generated_once_private_and_stable(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = master_secret(settings)
    path = tmp_path / "data" / "secret"
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert master_secret(Settings(data_dir=tmp_path / "data")) == first


def test_a_secret_being_created_is_never_read_half_written(tmp_path, monkeypatch):
    """Regression: the file was created empty, then written; a server's startup and its
    embedded worker reading the secret at once could meet the empty file ("holds no
    usable secret") between the two. Every reader now gets the one secret."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from attune.auth import signing

    real = signing.secrets.token_hex
    started = threading.Event()

    def slow_token(size: int) -> str:
        started.set()
        time.sleep(0.3)  # the creator is held between choosing and writing the secret
        return real(size)

    monkeypatch.setattr(signing.secrets, "token_hex", slow_token)
    settings = Settings(data_dir=tmp_path / "data")
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(master_secret, settings)
        started.wait(5)
        others = [pool.submit(master_secret, settings) for _ in range(3)]
        values = {first.result(), *(f.result() for f in others)}
    assert len(values) == 1 and len(values.pop()) >= 32
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret"]


def test_without_hard_links_the_secret_is_still_created_once(tmp_path, monkeypatch):
    from attune.auth import signing

    def no_links(_source, _target):
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(signing.os, "link", no_links)
    settings = Settings(data_dir=tmp_path / "data")
    first = master_secret(settings)
    assert len(first) >= 32 and master_secret(settings) == first
    path = tmp_path / "data" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret"]


def test_configured_secret_wins_and_no_file_is_written(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key="s" * 40)
    assert master_secret(settings) == b"s" * 40
    assert not (tmp_path / "data" / "secret").exists()
    assert "s" * 40 not in repr(settings)


def test_user_tokens_are_plain_hmac_sha256_that_a_customer_backend_can_make():
    signing = signing_secret(b"m" * 64, "0123456789abcdef")
    assert signing == signing_secret(b"m" * 64, "0123456789abcdef")
    assert signing != signing_secret(b"m" * 64, "fedcba9876543210")
    assert signing != signing_secret(b"n" * 64, "0123456789abcdef")
    # what the docs tell customers to compute on their server
    expected = hmac.new(signing.encode(), b"user-42", hashlib.sha256).hexdigest()
    assert user_token(signing, "user-42") == expected
    assert verify_user_token(signing, "user-42", expected)
    assert not verify_user_token(signing, "user-43", expected)
    assert not verify_user_token(signing, "user-42", expected[:-1] + "0")


def test_audit_targets_never_hold_the_user_id():
    target = audit_user_target(b"m" * 64, "alice@example.com")
    assert target.startswith("user:") and "alice" not in target
    assert target == audit_user_target(b"m" * 64, "alice@example.com")
    assert target != audit_user_target(b"n" * 64, "alice@example.com")
