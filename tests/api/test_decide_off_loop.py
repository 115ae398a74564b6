"""Embedded mode decides on the event loop, except a request that must first evaluate a
filter over the whole catalog: that one goes to a worker thread, so the other requests
of the process are not held up behind it."""

from __future__ import annotations

import sys
import threading

import pytest

from attune.engine.background import BUILD_SWITCH_SECONDS
from attune.engine.expressions import Filter
from attune.engine.recommend import RecommendationService
from attune.store.factory import Stores
from tests.api.test_filters import put_catalog


@pytest.fixture
def deciding_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread that decided each list, in order."""
    seen: list[int] = []
    for name in ("for_user", "rank"):
        original = getattr(RecommendationService, name)

        def spy(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(RecommendationService, name, spy)
    return seen


@pytest.mark.parametrize("backend", ["sqlite"])  # only embedded mode decides on the loop
def test_a_new_filter_is_evaluated_off_the_event_loop(
    client, trained: Stores, deciding_threads: list[int]
) -> None:
    assert trained.in_process
    put_catalog(client)
    url = "/v1/users/u0/recommendations"
    assert client.get(url, params={"n": 3}).status_code == 200
    new = '"A" in categories'
    assert client.get(url, params={"n": 3, "filter": new}).status_code == 200
    assert client.get(url, params={"n": 3, "filter": new}).status_code == 200
    body = {"user_id": "u0", "items": ["a0", "b0"], "filter": '"B" in categories'}
    assert client.post("/v1/rank", json=body).status_code == 200
    assert client.post("/v1/rank", json=body).status_code == 200
    loop, first, again, ranked, reranked = deciding_threads
    assert first != loop, "a filter with no mask yet is evaluated in a worker thread"
    assert again == loop, "once its mask is built, the filter is applied on the loop"
    assert ranked != loop and reranked == loop


def test_a_malformed_filter_is_refused_as_before(client, trained: Stores) -> None:
    response = client.get("/v1/users/u0/recommendations", params={"filter": "price <"})
    assert response.status_code == 422


def test_a_new_filter_is_evaluated_giving_way_to_the_requests(
    client, trained: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request evaluates a new filter over the catalog, the GIL changes hands
    every 0.5 ms rather than 5, so the others wait less for it."""
    intervals: list[float] = []
    original = Filter.mask_records

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        intervals.append(sys.getswitchinterval())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Filter, "mask_records", spy)
    put_catalog(client)
    before = sys.getswitchinterval()
    url = "/v1/users/u0/recommendations"
    assert client.get(url, params={"filter": '"B" in categories'}).status_code == 200
    assert intervals and max(intervals) <= BUILD_SWITCH_SECONDS < before
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_segment_rule_filters_are_built_off_the_event_loop(
    client, trained: Stores, deciding_threads: list[int]
) -> None:
    """Which rules' filters join a list depends on the person: the first request of a
    placement with filter rules goes to a worker thread, and every combination of its
    rules is built meanwhile, so later requests (of members of either segment, or both)
    are decided on the loop."""
    put_catalog(client)
    assert client.get("/v1/users/u0/recommendations", params={"n": 3}).status_code == 200
    client.put("/v1/segments/eu", json={"rule": 'traits.region == "EU"'})
    client.put("/v1/segments/new-visitors", json={"rule": "events < 3"})
    rules = [
        {"segment": "eu", "action": "filter", "filter": "price < 8"},
        {"segment": "new-visitors", "action": "filter", "filter": '"A" in categories'},
    ]
    assert client.put("/v1/placements/home", json={"rules": rules}).status_code == 200
    client.put("/v1/users/u0", json={"traits": {"region": "EU"}})
    client.put("/v1/users/fresh-face", json={"traits": {"region": "EU"}})
    home = {"n": 3, "placement": "home"}
    assert client.get("/v1/users/u0/recommendations", params=home).status_code == 200
    services = client.app.state.services
    assert services.recommendations.filters._build_wanted.wait(10)
    for person in ("u0", "u1", "fresh-face"):  # EU; neither; EU and new
        assert client.get(f"/v1/users/{person}/recommendations", params=home).status_code == 200
    loop, first, *later = deciding_threads
    assert first != loop, "a rule filter with no mask yet is evaluated in a worker thread"
    assert later == [loop] * 3, "every combination of the rules was built meanwhile"


def test_rule_filter_sets_cover_every_combination_in_rule_order() -> None:
    from attune.engine.decide import RULE_FILTERS_COMBINED, DecisionEngine
    from attune.engine.placements import PlacementConfig

    def config(n: int) -> PlacementConfig:
        rules = [
            {"segment": f"s{k}", "action": "filter", "filter": f"price < {k}"} for k in range(n)
        ]
        return PlacementConfig.model_validate({"rules": rules})

    sets = DecisionEngine.rule_filter_sets(config(2))
    assert sets == [[], ["price < 0"], ["price < 1"], ["price < 0", "price < 1"]]
    many = DecisionEngine.rule_filter_sets(config(RULE_FILTERS_COMBINED + 1))
    assert len(many) == RULE_FILTERS_COMBINED + 3 and many[-1] == [f"price < {k}" for k in range(5)]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_trending_is_counted_before_the_first_request(client, trained: Stores) -> None:
    """Counting trending items scans the window's events (a second or more at millions
    of events): the server does it as it starts, not inside someone's list."""
    services = client.app.state.services
    assert services.recommendations.engine.trending.ready()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_list_before_trending_is_counted_is_decided_off_the_event_loop(
    client, trained: Stores, deciding_threads: list[int]
) -> None:
    """Should the count not be there (a failed count at startup, another workspace), a
    list whose placement weighs trending items, which would count them, is decided on a
    worker thread, not on the loop."""
    trending = client.app.state.services.recommendations.engine.trending
    placement = {"sources": {"popular": 1.0, "trending": 1.0}}
    assert client.put("/v1/placements/home", json=placement).status_code in (200, 201)
    url = "/v1/users/a-newcomer/recommendations"
    assert client.get(url, params={"placement": "home"}).status_code == 200
    trending._cache.clear()
    assert client.get(url, params={"n": 3}).status_code == 200  # no trending: on the loop
    assert not trending.ready()
    assert client.get(url, params={"placement": "home", "n": 4}).status_code == 200
    assert trending.ready()
    assert client.get(url, params={"placement": "home", "n": 5}).status_code == 200
    loop, plain, counting, counted = deciding_threads
    assert plain == loop
    assert counting != loop, "the list that counts trending items runs on a worker thread"
    assert counted == loop
