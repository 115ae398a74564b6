"""The model a server answers with, swapped for a newer version without a restart."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from attune.config import Settings
from attune.engine.background import BackgroundRefresh, building_long_lived
from attune.features.interactions import WeightPolicy
from attune.models.base import Recommender
from attune.models.registry import load_model
from attune.store.cache import USER_PREFIX
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent, ModelVersion
from attune.training.pipeline import SERVING_FILE

Job = Literal["publish", "refit"]

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model version in memory: main model, popularity fallback, the item-to-item
    model behind "similar items", and the weighting. All share one item space."""

    version: ModelVersion
    main: Recommender
    fallback: Recommender
    policy: WeightPolicy
    similar: Recommender
    forgotten: int = 0
    """Who was forgotten in this copy since the version was loaded, as an order-free
    digest of their stored ids (0: nobody). Two processes holding the same version and
    digest hold the same models, so they may share cached answers; a copy that forgot
    someone never reuses answers decided before."""

    @cached_property
    def item_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.main.item_ids.tolist())}

    @cached_property
    def fallback_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.fallback.item_ids.tolist())}

    def indices(self, item_ids: set[str], position: dict[str, int]) -> np.ndarray:
        return np.fromiter((position[i] for i in item_ids if i in position), dtype=np.int64)


def load_version(stores: Stores, version: ModelVersion) -> LoadedModel:
    folder = stores.artifacts.open(version.artifact_uri)
    serving = json.loads((folder / SERVING_FILE).read_text())
    policy = WeightPolicy(
        type_weights=serving["type_weights"],
        value_modes=serving["value_modes"],
        half_life_days=serving["history_half_life_days"],
    )
    main = load_model(folder / "main")
    similar = load_model(folder / "similar") if (folder / "similar").is_dir() else main
    return LoadedModel(version, main, load_model(folder / "fallback"), policy, similar)


class ModelHolder:
    """Holds the newest champion version; checks for a newer one at most every
    ``refresh_seconds`` and swaps it in atomically (requests in flight keep the old one).

    Loading and preparing a version takes seconds at 100,000 items (the catalog lookups
    of :meth:`attune.engine.decide.DecisionEngine.prepare`). Once a version is held, the
    check and any load run on a background thread while requests go on with the held
    version (with decisions on the event loop, an inline load would stall every request
    of the process). ``swap_inline`` (default: when ``refresh_seconds`` is 0, "the newest
    on every call", as tests and one-shot commands want) does both inside :meth:`current`.

    :meth:`forget_user` removes an erased person from the held models at once and, in a
    background thread, makes that durable: a new version saved from the forgotten
    models when every role forgot exactly, else a refit of the served configuration
    (which needs ``settings``: the same event weights and consent rules as training;
    read from the environment when not given).
    """

    def __init__(
        self,
        stores: Stores,
        refresh_seconds: float = 2.0,
        settings: Settings | None = None,
        swap_inline: bool | None = None,
    ) -> None:
        self.stores = stores
        self.refresh_seconds = refresh_seconds
        self.settings = settings
        self.swap_inline = refresh_seconds <= 0 if swap_inline is None else swap_inline
        self._loaded: LoadedModel | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        # refresh() marks the check's time first: a failing one is retried a period later
        self._background = BackgroundRefresh(self.refresh, "model-refresh")
        self._forget_lock = threading.Lock()  # one erasure at a time, each on the newest state
        self._jobs = threading.Condition()  # guards the three fields below
        self._on_load: list[Callable[[LoadedModel], None]] = []
        self._pending: Job | None = None
        self._running: Job | None = None
        self._worker: threading.Thread | None = None

    def current(self) -> LoadedModel | None:
        """The held version; checks for a newer one when ``refresh_seconds`` have passed
        (inline while none is held or with ``swap_inline``, else in the background)."""
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            self.check_now()
        return self._loaded

    @property
    def held(self) -> LoadedModel | None:
        """The version held now, without looking for a newer one."""
        return self._loaded

    def check_now(self) -> None:
        """Look for a new champion now, not a period from now (e.g. after a rollback):
        inline while none is held or with ``swap_inline``, else in the background."""
        if self._loaded is None or self.swap_inline:
            self.refresh()
        else:
            self._background.start()

    def wait_for_refresh(self, timeout: float | None = None) -> bool:
        """Block until no background check or load is running; False on timeout."""
        return self._background.wait(timeout)

    def refresh(self) -> LoadedModel | None:
        """Load the newest champion if it differs from the one held."""
        with self._lock:
            self._checked_at = time.monotonic()
            latest = self.stores.model_versions.latest("champion")
            held = self._loaded.version.version_id if self._loaded else None
            if latest is not None and latest.version_id != held:
                try:
                    with building_long_lived():
                        loaded = load_version(self.stores, latest)
                        self._prepare(loaded)
                except Exception:
                    # keep answering with the model we have rather than failing requests
                    log.exception("could not load model version %s", latest.version_id)
                else:
                    self._loaded = loaded
                    log.info("serving model version %s", latest.version_id)
            return self._loaded

    def on_load(self, listener: Callable[[LoadedModel], None]) -> None:
        """Call ``listener`` with each newly loaded version before it serves (to build
        the lookups its first requests would otherwise pay for)."""
        self._on_load.append(listener)

    def _prepare(self, loaded: LoadedModel) -> None:
        for listener in self._on_load:
            try:
                listener(loaded)
            except Exception:  # a version that cannot be prepared still serves
                log.exception("could not prepare model version %s", loaded.version.version_id)

    # -- erasure ---------------------------------------------------------------------------

    def forget_user(
        self, user_id: str, history: Sequence[HistoryEvent], *, durable: bool = True
    ) -> dict[str, str]:
        """Remove a person's influence from every role of the served version, at once.

        Call it after their events are deleted, with the history read before. Each role
        forgets on a copy that is swapped in whole: a request sees the old models or the
        new ones, never a mix. Then a background job makes it durable (see the class
        docstring); erasures in a row share one job.

        Args:
            user_id: the person's id as stored (what the models were trained on).
            history: their events as stored (any order).
            durable: schedule the job that saves the result; False where another
                process erased them and its job saves it (see
                :mod:`attune.engine.broadcast`).

        Returns:
            role ("main", "fallback", "similar") → "exact" or "refit scheduled"; empty
            when no version is loaded.
        """
        from attune.engine.forgetting import EXACT, REFIT, forget_in_version, trained_events

        with self._forget_lock:
            while True:
                held = self.current()
                if held is None:
                    return {}
                if not trained_events(held, history):  # nothing of theirs was trained on
                    return {role: EXACT for role in ("main", "fallback", "similar")}
                updated, exact = forget_in_version(held, user_id, history)
                with self._lock:
                    if self._loaded is held:  # else a new version came in meanwhile: redo
                        self._loaded = updated
                        break
        self._drop_cached_answers()
        if durable:
            self._schedule("publish" if all(exact.values()) else "refit")
        log.info("forgot a person in version %s (exact: %s)", held.version.version_id, exact)
        return {role: EXACT if ok else REFIT for role, ok in exact.items()}

    def _drop_cached_answers(self) -> None:
        """Drop everyone's cached answers: they are keyed by version, which forgetting
        keeps, and may hold what the person caused."""
        try:
            self.stores.cache.delete_prefix(USER_PREFIX)
        except Exception:
            log.exception("could not drop cached answers after an erasure")

    def wait_for_jobs(self, timeout: float | None = None) -> bool:
        """Block until no erasure job is pending or running; False on timeout."""
        with self._jobs:
            return self._jobs.wait_for(lambda: self._worker is None, timeout)

    def _schedule(self, job: Job) -> None:
        with self._jobs:
            # a refit running now may have read the person's events: only another refit
            # is sure to leave them out
            refit = job == "refit" or self._pending == "refit" or self._running == "refit"
            self._pending = "refit" if refit else "publish"
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run_jobs, name="attune-forget", daemon=True
                )
                self._worker.start()

    def _run_jobs(self) -> None:
        while True:
            with self._jobs:
                job, self._pending = self._pending, None
                self._running = job
                if job is None:
                    self._worker = None
                    self._jobs.notify_all()
                    return
            try:
                self._run_job(job)
            except Exception:
                log.exception("erasure job %s failed; the forgotten models stay served", job)
            finally:
                with self._jobs:
                    self._running = None

    def _run_job(self, job: Job) -> None:
        from attune.engine.forgetting import publish_version

        held = self._loaded
        if held is None:
            return
        self._drop_cached_answers()  # again: a request in flight at the swap may have cached
        latest = self.stores.model_versions.latest("champion")
        if latest is None or latest.version_id != held.version.version_id:
            job = "refit"  # the champion moved on: only fresh training is sure to be clean
        if job == "refit":
            self._refit(held.version)
            return
        workspace = self.settings.workspace if self.settings is not None else "default"
        version = publish_version(self.stores, held, workspace)
        with self._lock:
            if self._loaded is not None and (
                self._loaded.version.version_id == held.version.version_id
            ):
                # the held state is the saved one, or later erasures on top of it (their
                # own publish job follows): label it so no refresh reloads the older file
                self._loaded = dataclasses.replace(self._loaded, version=version)
        log.info("saved the forgotten models of %s as %s", held.version.version_id, version)

    def _refit(self, version: ModelVersion) -> None:
        """Retrain ``version``'s algorithm and parameters (no tuning) on the stored events
        and serve the result."""
        from attune.config import get_settings
        from attune.training.pipeline import train

        settings = self.settings or get_settings()
        refitted = train(
            settings,
            self.stores,
            algorithm=version.algorithm,
            params=version.params,
            like=version,
            origin="erasure",
        )
        log.info("refitted %s as %s after an erasure", version.version_id, refitted.version_id)
        self.refresh()
