"""Open every store a process needs from its settings, as one bundle."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine

from attune.config import Settings
from attune.errors import ConfigurationError
from attune.store.artifacts import LocalArtifactStore
from attune.store.cache import MemoryCache
from attune.store.protocols import (
    ArtifactStore,
    AuditStore,
    CacheStore,
    CatalogStore,
    ConsentStore,
    EventStore,
    KeyStore,
    ModelVersionStore,
    NamedConfigStore,
    PreferenceStore,
    RecommendationLogStore,
    SessionStore,
    UserStore,
)
from attune.store.redis_cache import RedisCache
from attune.store.sessions import MemorySessionStore, RedisSessionStore, SessionEvent


@dataclass
class Stores:
    """The stores of one deployment. ``erase_user`` fans out to every kind."""

    events: EventStore
    catalog: CatalogStore
    users: UserStore
    model_versions: ModelVersionStore
    artifacts: ArtifactStore
    cache: CacheStore
    preferences: PreferenceStore
    placements: NamedConfigStore
    segments: NamedConfigStore
    recommendation_logs: RecommendationLogStore
    sessions: SessionStore
    consent: ConsentStore
    keys: KeyStore
    audit: AuditStore
    engine: Engine

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Remove everything held about ``user_id`` from every store kind in the bundle;
        returns what each removed (a store added to the bundle joins automatically)."""
        removed: dict[str, int] = {}
        for spec in fields(self):
            store = getattr(self, spec.name)
            if hasattr(store, "erase_user"):
                removed[spec.name] = store.erase_user(user_id)
        return removed

    def reads(self) -> AbstractContextManager[None]:
        """Reads inside share one database connection (a request reading one person's
        state: the pool round trip per read cost more than the reads)."""
        from attune.store.sql._util import held_connection

        return held_connection(self.engine)

    def cached_and_recent(
        self, key: str, user_id: str
    ) -> tuple[Any | None, list[SessionEvent], Any]:
        """The cache entry under ``key``, the person's live session events and their
        cache generation (as ``cache.get``, ``sessions.recent`` and
        ``cache.generation`` give them): one round trip when cache and sessions live in
        one Redis, where a request would otherwise make three in a row."""
        cache, sessions = self.cache, self.sessions
        if (
            isinstance(cache, RedisCache)
            and isinstance(sessions, RedisSessionStore)
            and cache.client is sessions.client
        ):
            pipe = cache.client.pipeline(transaction=False)
            cache.queue_generation(pipe, key)
            cache.queue_get(pipe, key)
            sessions.queue_recent(pipe, user_id)
            generation, cached, recent = pipe.execute()
            return (
                cache.from_reply(cached),
                sessions.from_reply(recent),
                cache.generation_from_reply(generation),
            )
        generation = cache.generation(key)
        return cache.get(key), sessions.recent(user_id), generation

    @property
    def in_process(self) -> bool:
        """Whether every read a request makes stays in this process or on local disk
        (SQLite, in-process cache and sessions): nothing waits on a network."""
        return (
            self.engine.dialect.name == "sqlite"
            and isinstance(self.cache, MemoryCache)
            and isinstance(self.sessions, MemorySessionStore)
        )

    def close(self) -> None:
        self.engine.dispose()


def workspace_exists(settings: Settings) -> bool:
    """Whether the settings' workspace holds a database already (the default one always
    counts: it is made on first use, by any command)."""
    if settings.is_default_workspace:
        return True
    schema = settings.sql_schema
    if schema is None:
        return (settings.workspace_dir / "attune.db").exists()
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.sql_url)
    try:
        with engine.connect() as conn:
            query = text("select 1 from information_schema.schemata where schema_name = :s")
            return conn.execute(query, {"s": schema}).first() is not None
    finally:
        engine.dispose()


def open_stores(settings: Settings, *, migrate: bool = True) -> Stores:
    """Connect to the configured database (migrating it to the newest schema) and stores."""
    from attune.auth.signing import master_secret
    from attune.store.sql.audit import SqlAuditStore
    from attune.store.sql.catalog import SqlCatalogStore, SqlUserStore
    from attune.store.sql.consent import SqlConsentStore
    from attune.store.sql.decide import (
        SqlPlacementStore,
        SqlPreferenceStore,
        SqlRecommendationLogStore,
        SqlSegmentStore,
    )
    from attune.store.sql.engine import make_engine
    from attune.store.sql.engine import migrate as run_migrations
    from attune.store.sql.events import SqlEventStore
    from attune.store.sql.keys import SqlKeyStore
    from attune.store.sql.model_versions import SqlModelVersionStore

    engine = make_engine(settings.sql_url, settings.sql_schema)
    if migrate:
        run_migrations(engine)
    cache, sessions = _live_stores(settings)
    return Stores(
        events=SqlEventStore(engine),
        catalog=SqlCatalogStore(engine),
        users=SqlUserStore(engine),
        model_versions=SqlModelVersionStore(engine),
        artifacts=LocalArtifactStore(settings.models_dir),
        cache=cache,
        preferences=SqlPreferenceStore(engine),
        placements=SqlPlacementStore(engine),
        segments=SqlSegmentStore(engine),
        recommendation_logs=SqlRecommendationLogStore(engine),
        sessions=sessions,
        consent=SqlConsentStore(engine),
        keys=SqlKeyStore(engine),
        audit=SqlAuditStore(engine, functools.cache(lambda: master_secret(settings))),
        engine=engine,
    )


def _live_stores(settings: Settings) -> tuple[CacheStore, SessionStore]:
    """The cache and live session state: in-process, or Redis when configured."""
    if not settings.redis_url:
        return MemoryCache(), MemorySessionStore()
    try:
        import redis
    except ImportError as exc:  # the redis extra is not installed
        raise ConfigurationError("ATTUNE_REDIS_URL is set: pip install 'attune[redis]'") from exc
    client = redis.Redis.from_url(settings.redis_url)
    prefix = settings.redis_prefix
    if not settings.is_default_workspace:  # workspaces never share cache entries
        prefix = f"{prefix}:ws:{settings.workspace}"
    return RedisCache(client, prefix), RedisSessionStore(client, prefix)
