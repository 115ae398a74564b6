"""Shared fixtures: settings in a temp folder, stores on SQLite and PostgreSQL, API clients.

PostgreSQL tests use ``ATTUNE_TEST_POSTGRES_URL`` (default: the local server with trust
auth) and skip when it cannot be reached, unless ``ATTUNE_REQUIRE_SERVICES=1`` (set by
CI), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from attune.config import Settings
from attune.store.factory import Stores, open_stores
from attune.store.sql.schema import metadata

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_DATA = ROOT / "data" / "ml-latest-small"
PG_URL = os.environ.get("ATTUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("ATTUNE_REQUIRE_SERVICES") == "1"
ADMIN_KEY = "test-admin-key-0123456789abcdef"
"""``ATTUNE_ADMIN_KEY`` of the ``settings`` fixture: a full-scope key of the default workspace."""
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
"""Headers that authenticate a test client with :data:`ADMIN_KEY`."""


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ATTUNE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed")
    admin_url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"attune_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable(f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}")
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_refresh_seconds=0, admin_key=ADMIN_KEY)


def _truncate(stores: Stores) -> None:
    with stores.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def any_settings(backend: str, settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Settings on each backend in turn (SQLite file, then PostgreSQL)."""
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        return settings.model_copy(update={"database_url": url})
    return settings


@pytest.fixture
def stores(any_settings: Settings) -> Iterator[Stores]:
    """Migrated, empty stores on each backend."""
    opened = open_stores(any_settings)
    _truncate(opened)
    try:
        yield opened
    finally:
        _truncate(opened)
        opened.close()


@pytest.fixture
def sqlite_stores(settings: Settings) -> Iterator[Stores]:
    opened = open_stores(settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def client(any_settings: Settings, stores: Stores) -> Iterator[object]:
    """A TestClient on the API, on each backend, authenticated with the admin key."""
    from fastapi.testclient import TestClient

    from attune.api.app import create_app

    with TestClient(create_app(any_settings, stores), headers=AUTH) as test_client:
        yield test_client


def two_taste_events(n_users: int = 40, start: int = 1_700_000_000) -> list[dict[str, object]]:
    """Users who like either the "a" items or the "b" items; each has seen three of five.

    A small world with an obvious right answer: an "a" person should be offered the
    "a" items they have not seen, never a "b" item first.
    """
    events: list[dict[str, object]] = []
    for u in range(n_users):
        taste = "a" if u % 2 == 0 else "b"
        for k in range(5):
            if (u + k) % 5 < 3:
                events.append(
                    {
                        "user_id": f"u{u}",
                        "item_id": f"{taste}{k}",
                        "type": "view",
                        "timestamp": start + u * 100 + k,
                    }
                )
    return events


@pytest.fixture
def trained(any_settings: Settings, stores: Stores) -> Stores:
    """Stores holding :func:`two_taste_events` and a trained item-kNN version."""
    from attune.ingest.service import IngestService
    from attune.training.pipeline import train

    IngestService(any_settings, stores).ingest_events(two_taste_events())
    train(any_settings, stores)
    return stores


REDIS_URL = os.environ.get("ATTUNE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[object]:
    """A client of the test Redis (skips, or fails under ATTUNE_REQUIRE_SERVICES=1)."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        _unavailable(f"Redis at {REDIS_URL} is not reachable: {type(exc).__name__}")
    yield client
    client.close()
