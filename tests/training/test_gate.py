"""The champion/challenger check: a retrain that learned from bad data does not serve."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from attune.config import Settings
from attune.ingest.service import IngestService
from attune.store.factory import Stores
from attune.training.gate import GATE_MIN_PEOPLE
from attune.training.pipeline import last_tuned, train
from attune.training.promotion import HOLD_ACTION, previous_version
from attune.training.schedule import retrain

START = 1_700_000_000
ITEMS_PER_TASTE = 20


def _taste(user: int) -> str:
    return "a" if user % 2 == 0 else "b"


def _own_taste_events(
    n_users: int, per_user: int, start: float, rng: random.Random, skip: dict[int, set[str]]
) -> list[dict[str, object]]:
    """Each person views ``per_user`` items of their own taste they had not seen."""
    events = []
    for u in range(n_users):
        unseen = [
            f"{_taste(u)}{k}" for k in range(ITEMS_PER_TASTE) if f"{_taste(u)}{k}" not in skip[u]
        ]
        for k, item in enumerate(rng.sample(unseen, per_user)):
            skip[u].add(item)
            events.append(
                {"user_id": f"u{u}", "item_id": item, "type": "view", "timestamp": start + k}
            )
    return events


def _scraper_flood(n_bots: int, start: float) -> list[dict[str, object]]:
    """Scripted clients (a price-comparison scraper, say), each viewing one "a" item and
    its "b" counterpart: co-occurrence that links the two tastes and means nothing."""
    return [
        {
            "user_id": f"bot{b}",
            "item_id": f"{taste}{b % ITEMS_PER_TASTE}",
            "type": "view",
            "timestamp": start + k,
        }
        for b in range(n_bots)
        for k, taste in enumerate("ab")
    ]


@pytest.fixture
def world(settings: Settings, sqlite_stores: Stores) -> tuple[Settings, Stores, dict]:
    """200 people of two tastes, 8 views each, and an item-kNN champion trained on them."""
    settings = settings.model_copy(update={"default_algorithm": "item_knn"})
    rng = random.Random(3)
    seen: dict[int, set[str]] = {u: set() for u in range(200)}
    IngestService(settings, sqlite_stores).ingest_events(
        _own_taste_events(200, 8, START, rng, seen)
    )
    champion = train(settings, sqlite_stores)
    return settings, sqlite_stores, {"rng": rng, "seen": seen, "champion": champion}


def _in_process(settings: Settings, stores: Stores) -> object:
    def trainer(_settings: Settings, budget: float | None, gate: bool) -> str:
        return train(settings, stores, tune_budget_seconds=budget, gate=gate).version_id

    return trainer


def test_a_retrain_on_healthy_new_events_serves(world: tuple) -> None:
    settings, stores, state = world
    fresh = _own_taste_events(200, 4, START + 10_000, state["rng"], state["seen"])
    IngestService(settings, stores).ingest_events(fresh)

    outcome = retrain(settings, stores, _in_process(settings, stores))

    assert outcome.action == "trained" and outcome.reason.endswith("check promoted")
    serving = stores.model_versions.latest("champion")
    assert serving.version_id == outcome.version_id
    gate = serving.metrics["gate"]
    assert gate["verdict"] == "promoted" and gate["champion"] == state["champion"].version_id
    assert gate["people"] >= GATE_MIN_PEOPLE
    # judged only on what the champion never saw, the challenger having learnt from the
    # first half of it
    assert START + 10_000 <= gate["cut"] < START + 10_003


def test_a_retrain_polluted_by_a_scraper_is_held_back(world: tuple) -> None:
    settings, stores, state = world
    bots = _scraper_flood(5_000, START + 10_000)
    fresh = _own_taste_events(200, 4, START + 20_000, state["rng"], state["seen"])
    IngestService(settings, stores).ingest_events(bots + fresh)

    outcome = retrain(settings, stores, _in_process(settings, stores))

    assert outcome.action == "held"
    assert "the serving version predicts the newest events clearly better" in str(outcome)
    held = stores.model_versions.get(outcome.version_id)
    assert held.status == "candidate"
    gate = held.metrics["gate"]
    assert gate["verdict"] == "held" and gate["champion_ndcg@10"] > gate["challenger_ndcg@10"]
    # the champion goes on serving; the hold is in the audit log
    assert stores.model_versions.latest("champion").version_id == state["champion"].version_id
    entry = stores.audit.list(1, action=HOLD_ACTION)[0]
    assert entry.target == held.version_id and "clearly better" in entry.details["gate"]
    # the next retrain tries again (the same events are still new to the champion)
    assert retrain(settings, stores, _in_process(settings, stores)).action == "held"


def test_too_few_people_after_the_cut_is_inconclusive_and_serves(world: tuple) -> None:
    settings, stores, state = world
    fresh = _own_taste_events(10, 2, START + 10_000, state["rng"], state["seen"])
    IngestService(settings, stores).ingest_events(fresh)

    version = train(settings, stores, gate=True)

    assert version.status == "champion"
    assert version.metrics["gate"]["verdict"] == "inconclusive"
    assert f"({GATE_MIN_PEOPLE} needed to compare)" in version.metrics["gate"]["reason"]


def test_the_check_can_be_turned_off(world: tuple) -> None:
    settings, stores, _state = world
    settings = settings.model_copy(update={"retrain_gate": False})
    IngestService(settings, stores).ingest_events(_scraper_flood(5_000, START + 10_000))

    outcome = retrain(settings, stores, _in_process(settings, stores))

    assert outcome.action == "trained"
    version = stores.model_versions.latest("champion")
    assert version.version_id == outcome.version_id and "gate" not in version.metrics


def test_held_versions_are_never_in_force(world: tuple) -> None:
    """A held tuned candidate is not the configuration plain retrains reuse, nor what a
    rollback goes back to; rolling forward to it on purpose serves it."""
    from attune.training.promotion import roll_back

    settings, stores, state = world
    first = state["champion"]
    tuned = replace(
        first,
        version_id="tuned-then-held",
        status="candidate",
        metrics={**first.metrics, "selection": "tuned", "gate": {"verdict": "held"}},
        seq=0,
    )
    stores.model_versions.register(tuned)
    second = train(settings, stores)
    assert last_tuned(stores) is None
    assert previous_version(stores).version_id == first.version_id

    forward = roll_back(stores, "tuned-then-held")
    assert stores.model_versions.latest("champion").version_id == forward.version_id
    assert last_tuned(stores).version_id == forward.version_id != second.version_id
