"""Schema migrations on a database written by an earlier release."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from attune.store.sql.engine import MIGRATIONS_DIR, migrate


def _upgrade(engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_only_the_newest_of_the_old_champions_stays_champion(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, "0002_decide_and_trust")  # before statuses were kept up to date
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO model_versions (version_id, seq, algorithm, params, "
                    "data_window, status, artifact_uri, created_at) "
                    "VALUES (:v, :s, 'item_knn', '{}', '{}', 'champion', 'file:///x', 0)"
                ),
                {"v": f"v{seq}", "s": seq},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version_id, status FROM model_versions ORDER BY seq"))
        assert [tuple(r) for r in rows] == [
            ("v1", "retired"),
            ("v2", "retired"),
            ("v3", "champion"),
        ]


def test_migrations_running_at_once_in_one_process_all_succeed(tmp_path):
    """Regression: `attune serve` failed to start now and then with KeyError: 'script'
    from Alembic: the embedded worker's thread and the app's startup migrated at the same
    moment, and Alembic's migration context lives in module globals, which one run
    removed from under the other."""
    from concurrent.futures import ThreadPoolExecutor

    from attune.store.sql.engine import make_engine, migrate

    engines = [make_engine(f"sqlite:///{tmp_path / f'db{k}.sqlite'}") for k in range(6)]
    with ThreadPoolExecutor(len(engines)) as pool:
        for future in [pool.submit(migrate, engine) for engine in engines]:
            future.result()  # raises what the thread raised


def test_a_catalog_from_before_tombstones_can_delete_items(tmp_path):
    from attune.store.sql.catalog import SqlCatalogStore

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, "0003_retire_old_champions")  # before deleted items were remembered
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (item_id, categories, tags, available, updated_at) "
                "VALUES ('kept', '[]', '[]', 1, 0), ('gone', '[]', '[]', 1, 0)"
            )
        )
    migrate(engine)
    catalog = SqlCatalogStore(engine)
    assert catalog.delete_item("gone") is True
    assert catalog.deleted_item_ids() == {"gone"}
    assert set(catalog.item_frame()["item_id"]) == {"kept"}


def test_a_catalog_from_before_versions_starts_its_change_log(tmp_path):
    from attune.store.sql.catalog import SqlCatalogStore

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, "0004_item_tombstones")  # before the catalog had a version
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (item_id, categories, tags, available, updated_at) "
                "VALUES ('old', '[]', '[]', 1, 0)"
            )
        )
    migrate(engine)
    catalog = SqlCatalogStore(engine)
    start = catalog.content_stamp()
    assert start == "0" and catalog.changes_since(start) == ("0", [])
    catalog.delete_item("old")
    assert catalog.changes_since(start) == ("1", ["old"])
