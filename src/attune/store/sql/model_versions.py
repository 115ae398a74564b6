"""SQL registry of model versions (metadata only; the files live in the artifact store)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from attune.store.protocols import ModelVersion
from attune.store.sql.schema import model_versions

REGISTER_ATTEMPTS = 5

CHAMPION = "champion"
RETIRED = "retired"
"""A champion once, since replaced by a newer one."""


def _version(row: Any) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        version_id=m["version_id"],
        algorithm=m["algorithm"],
        params=m["params"] or {},
        data_window=m["data_window"] or {},
        artifact_uri=m["artifact_uri"],
        status=m["status"],
        metrics=m["metrics"] or {},
        created_at=m["created_at"],
        seq=m["seq"],
    )


class SqlModelVersionStore:
    """See :class:`attune.store.protocols.ModelVersionStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, version: ModelVersion) -> ModelVersion:
        """Store a new version as the newest (the next ``seq``); a champion retires the
        others. Registrations at the same moment (a training job beside a forgotten
        copy being saved) may both read the same highest ``seq``: the one that loses the
        unique constraint tries again on top of the other."""
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                return self._register(version)
            except IntegrityError:
                if attempt == REGISTER_ATTEMPTS - 1 or self.get(version.version_id) is not None:
                    raise  # not a race for the number: the id itself is taken
        raise AssertionError("unreachable")

    def _register(self, version: ModelVersion) -> ModelVersion:
        with self.engine.begin() as conn:
            top = conn.execute(select(func.max(model_versions.c.seq))).scalar_one()
            version.seq = int(top or 0) + 1
            if version.status == CHAMPION:
                # what serves is the newest champion either way; the older ones say so
                conn.execute(
                    model_versions.update()
                    .where(model_versions.c.status == CHAMPION)
                    .values(status=RETIRED)
                )
            conn.execute(
                model_versions.insert().values(
                    version_id=version.version_id,
                    seq=version.seq,
                    algorithm=version.algorithm,
                    params=version.params,
                    data_window=version.data_window,
                    metrics=version.metrics,
                    status=version.status,
                    artifact_uri=version.artifact_uri,
                    created_at=version.created_at,
                )
            )
        return version

    def latest(self, status: str = "champion") -> ModelVersion | None:
        query = (
            select(model_versions)
            .where(model_versions.c.status == status)
            .order_by(model_versions.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _version(row) if row else None

    def get(self, version_id: str) -> ModelVersion | None:
        query = select(model_versions).where(model_versions.c.version_id == version_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _version(row) if row else None

    def list_versions(self, limit: int = 50) -> list[ModelVersion]:
        query = select(model_versions).order_by(model_versions.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_version(r) for r in conn.execute(query)]

    def set_status(self, version_ids: Sequence[str], status: str) -> int:
        if not version_ids:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                model_versions.update()
                .where(
                    model_versions.c.version_id.in_(list(version_ids)),
                    model_versions.c.status != CHAMPION,
                )
                .values(status=status)
            )
            return int(result.rowcount)

    def erase_user(self, user_id: str) -> int:
        """Version metadata holds no personal data (the artifacts may; see ArtifactStore)."""
        return 0
