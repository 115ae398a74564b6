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
