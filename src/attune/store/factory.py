"""Open every store a process needs from its settings, as one bundle."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from attune.config import Settings
from attune.store.artifacts import LocalArtifactStore
from attune.store.cache import MemoryCache
from attune.store.protocols import (
    ArtifactStore,
    CacheStore,
    CatalogStore,
    EventStore,
    ModelVersionStore,
    UserStore,
)


@dataclass
class Stores:
    """The stores of one deployment. ``erase_user`` fans out to every kind."""

    events: EventStore
    catalog: CatalogStore
    users: UserStore
    model_versions: ModelVersionStore
    artifacts: ArtifactStore
    cache: CacheStore
    engine: Engine

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Remove everything held about ``user_id``; returns what each store removed."""
        return {
            "events": self.events.erase_user(user_id),
            "users": self.users.erase_user(user_id),
            "catalog": self.catalog.erase_user(user_id),
            "model_versions": self.model_versions.erase_user(user_id),
            "artifacts": self.artifacts.erase_user(user_id),
            "cache": self.cache.erase_user(user_id),
        }

    def close(self) -> None:
        self.engine.dispose()


def open_stores(settings: Settings, *, migrate: bool = True) -> Stores:
    """Connect to the configured database (migrating it to the newest schema) and stores."""
    from attune.store.sql.catalog import SqlCatalogStore, SqlUserStore
    from attune.store.sql.engine import make_engine
    from attune.store.sql.engine import migrate as run_migrations
    from attune.store.sql.events import SqlEventStore
    from attune.store.sql.model_versions import SqlModelVersionStore

    engine = make_engine(settings.sql_url)
    if migrate:
        run_migrations(engine)
    return Stores(
        events=SqlEventStore(engine),
        catalog=SqlCatalogStore(engine),
        users=SqlUserStore(engine),
        model_versions=SqlModelVersionStore(engine),
        artifacts=LocalArtifactStore(settings.models_dir),
        cache=MemoryCache(),
        engine=engine,
    )
