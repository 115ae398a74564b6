"""Forgetting an erased person in a loaded model version, and saving the result.

:func:`forget_in_version` applies :meth:`~attune.models.base.Recommender.forget` to every
role of a :class:`~attune.engine.model_holder.LoadedModel` on copies, so the version
being served is never touched; :func:`publish_version` saves a forgotten version as a new
champion, so a restart or another replica does not bring the person back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from attune.models.base import Recommender
from attune.models.forgetting import ErasedPerson
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent, ModelVersion
from attune.training.pipeline import SERVING_FILE
from attune.training.promotion import new_version_id, register_champion

if TYPE_CHECKING:
    from attune.engine.model_holder import LoadedModel

log = logging.getLogger(__name__)

ROLES = ("main", "fallback", "similar")
EXACT = "exact"
REFIT = "refit scheduled"


def forget_in_version(
    loaded: LoadedModel, user_id: str, history: Sequence[HistoryEvent]
) -> tuple[LoadedModel, dict[str, bool]]:
    """A copy of ``loaded`` whose models have forgotten the person, and per role whether
    that was exact.

    Only events up to the version's data window end count: later ones were not trained
    on. When a model can tell that it did not train on exactly these events
    (:meth:`~attune.models.base.Recommender.holds`), nothing is subtracted anywhere and
    every role awaits the refit. A role shared by two names (item-kNN serving as both
    main and similar) is forgotten once. A model that fails to forget keeps its old
    state and counts as not exact.

    Args:
        user_id: the person's external id.
        history: their stored events (as read before they were deleted).
    """
    events = trained_events(loaded, history)
    people: dict[int, ErasedPerson] = {}
    for role in ROLES:
        model: Recommender = getattr(loaded, role)
        if id(model) not in people:
            position = {item: i for i, item in enumerate(model.item_ids.tolist())}
            people[id(model)] = ErasedPerson.from_history(
                user_id, events, position, model.n_items, loaded.policy
            )
    if any(
        getattr(loaded, role).holds(people[id(getattr(loaded, role))]) is False for role in ROLES
    ):
        # not these events in the training data (they lacked consent then, or events came
        # late): subtracting them would corrupt the models; only a refit is safe
        log.info("version %s did not train on this person as stored", loaded.version.version_id)
        return loaded, dict.fromkeys(ROLES, False)
    done: dict[int, tuple[Recommender, bool]] = {}
    models: dict[str, Recommender] = {}
    exact: dict[str, bool] = {}
    for role in ROLES:
        model = getattr(loaded, role)
        if id(model) not in done:
            done[id(model)] = _forget(model, people[id(model)], loaded)
        models[role], exact[role] = done[id(model)]
    forgotten = loaded.forgotten ^ person_digest(user_id)
    return dataclasses.replace(loaded, **models, forgotten=forgotten), exact


def person_digest(user_id: str) -> int:
    """64 bits of a digest of a stored id, combined by XOR into
    :attr:`LoadedModel.forgotten` (the same people in any order give the same value)."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")


def trained_events(loaded: LoadedModel, history: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """The events of ``history`` the version can have trained on: those up to the end of
    its data window."""
    end = loaded.version.data_window.get("end")
    return [e for e in history if end is None or e.timestamp <= float(end)]


def _forget(
    model: Recommender, person: ErasedPerson, loaded: LoadedModel
) -> tuple[Recommender, bool]:
    try:
        return model.forgotten(person)
    except Exception:
        log.exception(
            "%s of version %s could not forget a person; a refit will",
            model.name,
            loaded.version.version_id,
        )
        return model, False


def publish_version(
    stores: Stores, loaded: LoadedModel, workspace: str = "default"
) -> ModelVersion:
    """Save ``loaded``'s models as a new champion version with the same configuration.

    The new version records which version it was forgotten from (never whom).
    """
    old = loaded.version
    stamp = datetime.now(UTC)
    version_id = new_version_id(old.algorithm, stamp)
    folder = stores.artifacts.path_for(version_id)
    loaded.main.save(folder / "main")
    loaded.fallback.save(folder / "fallback")
    if loaded.similar is not loaded.main:
        loaded.similar.save(folder / "similar")
    shutil.copyfile(stores.artifacts.open(old.artifact_uri) / SERVING_FILE, folder / SERVING_FILE)
    version = ModelVersion(
        version_id=version_id,
        algorithm=old.algorithm,
        params=dict(old.params),
        data_window=dict(old.data_window),
        artifact_uri=stores.artifacts.uri_for(version_id),
        status="champion",
        metrics={**old.metrics, "forgotten_from": old.version_id},
        created_at=stamp.timestamp(),
    )
    return register_champion(stores, version, "forget", workspace)
