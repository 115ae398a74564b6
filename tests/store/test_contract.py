"""One contract for every store backend: each test runs on SQLite and on PostgreSQL.

The ``stores`` fixture hands out migrated, empty stores on each backend in turn, so a
behaviour that holds on one database and not on the other fails here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from attune.config import Settings
from attune.errors import ValidationError
from attune.store.factory import Stores, open_stores
from attune.store.protocols import HistoryEvent, ModelVersion

T0 = 1_700_000_000.0


def event(event_id: str, user_id: str | None = "u1", item_id: str | None = "i1", **extra: Any):
    row: dict[str, Any] = {
        "event_id": event_id,
        "user_id": user_id,
        "anonymous_id": None,
        "item_id": item_id,
        "type": "view",
        "value": None,
        "timestamp": T0,
        "received_at": T0 + 5,
        "context": None,
        "properties": None,
        "recommendation_id": None,
    }
    row.update(extra)
    return row


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "item_id": item_id,
        "title": None,
        "text": None,
        "categories": [],
        "tags": [],
        "language": None,
        "translations": None,
        "regions": None,
        "available": True,
        "price": None,
        "created_at": None,
        "properties": None,
        "updated_at": T0,
    }
    row.update(fields)
    return row


def user(user_id: str, traits: dict[str, Any] | None = None, at: float = T0) -> dict[str, Any]:
    return {"user_id": user_id, "traits": traits or {}, "created_at": at, "updated_at": at}


# events -------------------------------------------------------------------------------------


def test_add_events_returns_only_new_ids(stores: Stores):
    assert stores.events.add_events([]) == set()
    first = stores.events.add_events([event("e1"), event("e2", item_id="i2")])
    assert first == {"e1", "e2"}
    again = stores.events.add_events([event("e2", value=9.0), event("e3")])
    assert again == {"e3"}
    assert stores.events.count() == 3
    # the repeated e2 changed nothing: the first version is kept
    (kept,) = [r for r in stores.events.user_events("u1") if r["event_id"] == "e2"]
    assert kept["value"] is None and kept["item_id"] == "i2"


def test_add_events_ignores_repeats_inside_one_call(stores: Stores):
    inserted = stores.events.add_events([event("d1"), event("d1", item_id="other"), event("d2")])
    assert inserted == {"d1", "d2"}
    assert stores.events.count() == 2
    assert stores.events.existing_event_ids(["d1", "d2", "nope"]) == {"d1", "d2"}


def test_add_events_many_rows_in_one_call(stores: Stores):
    rows = [event(f"m{k}", item_id=f"i{k % 50}", timestamp=T0 + k) for k in range(6_000)]
    assert len(stores.events.add_events(rows)) == 6_000
    assert stores.events.add_events(rows) == set()
    assert stores.events.count() == 6_000


def test_user_history_oldest_first_and_limit_keeps_newest(stores: Stores):
    stores.events.add_events(
        [
            event("h3", item_id="c", timestamp=T0 + 30, type="purchase", value=2.0),
            event("h1", item_id="a", timestamp=T0 + 10),
            event("h2", item_id="b", timestamp=T0 + 20, type="click"),
            event("h0", item_id=None, timestamp=T0 + 40, type="search"),
            event("x1", user_id="someone-else", item_id="z", timestamp=T0 + 15),
        ]
    )
    history = stores.events.user_history("u1")
    assert history == [
        HistoryEvent("a", "view", None, T0 + 10),
        HistoryEvent("b", "click", None, T0 + 20),
        HistoryEvent("c", "purchase", 2.0, T0 + 30),
    ]
    assert [h.item_id for h in stores.events.user_history("u1", limit=2)] == ["b", "c"]
    assert stores.events.user_history("nobody") == []


def test_user_histories_for_many_users(stores: Stores):
    rows = []
    for u in range(30):
        for k in range(4):
            rows.append(event(f"u{u}-{k}", user_id=f"u{u}", item_id=f"i{k}", timestamp=T0 - k))
    stores.events.add_events(rows)
    wanted = [f"u{u}" for u in range(30)] + ["ghost", "u3"]
    histories = stores.events.user_histories(wanted)
    assert set(histories) == {f"u{u}" for u in range(30)}
    assert [h.item_id for h in histories["u7"]] == ["i3", "i2", "i1", "i0"]
    limited = stores.events.user_histories(["u1", "u2"], limit=2)
    assert [h.item_id for h in limited["u1"]] == ["i1", "i0"]
    # the same answer as asking one by one
    assert histories["u12"] == stores.events.user_history("u12")


def test_user_item_marks_hold_the_newest_event_of_each_item_and_type(stores: Stores):
    stores.events.add_events(
        [
            event("m1", item_id="a", timestamp=T0 + 10),
            event("m2", item_id="a", timestamp=T0 + 50),
            event("m3", item_id="a", timestamp=T0 + 20, type="not_interested"),
            event("m4", item_id="b", timestamp=T0 + 30, type="purchase", value=3.0),
            event("m5", item_id=None, timestamp=T0 + 40, type="search"),
            event("m6", user_id=None, anonymous_id="u1", item_id="c", timestamp=T0 + 5),
            event("x1", user_id="someone-else", item_id="z", timestamp=T0 + 15),
        ]
    )
    marks = sorted(stores.events.user_item_marks("u1"), key=lambda m: (m.item_id, m.type))
    assert marks == [
        HistoryEvent("a", "not_interested", None, T0 + 20),
        HistoryEvent("a", "view", None, T0 + 50),
        HistoryEvent("b", "purchase", None, T0 + 30),
        HistoryEvent("c", "view", None, T0 + 5),
    ]
    assert stores.events.user_item_marks("nobody") == []


def test_anonymous_events_belong_to_that_id(stores: Stores):
    stores.events.add_events(
        [
            event("a1", user_id=None, anonymous_id="anon-1", item_id="x", timestamp=T0 + 1),
            event("a2", user_id="known", anonymous_id="anon-1", item_id="y", timestamp=T0 + 2),
        ]
    )
    assert [h.item_id for h in stores.events.user_history("anon-1")] == ["x", "y"]
    assert [h.item_id for h in stores.events.user_history("known")] == ["y"]
    many = stores.events.user_histories(["anon-1", "known"])
    assert [h.item_id for h in many["anon-1"]] == ["x", "y"]
    assert [h.item_id for h in many["known"]] == ["y"]
    assert {r["event_id"] for r in stores.events.user_events("anon-1")} == {"a1", "a2"}


def test_interaction_frame_columns_types_and_no_itemless_events(stores: Stores):
    empty = stores.events.interaction_frame()
    assert list(empty.columns) == ["user_id", "item_id", "type", "value", "timestamp"]
    assert len(empty) == 0
    assert empty["value"].dtype == "float64" and empty["timestamp"].dtype == "float64"

    stores.events.add_events(
        [
            event("f1", item_id="a", type="rating", value=4.5),
            event("f2", item_id="b", type="view"),
            event("f3", item_id=None, type="search"),
            event("f4", user_id=None, anonymous_id="anon", item_id="c"),
        ]
    )
    frame = stores.events.interaction_frame()
    assert list(frame.columns) == ["user_id", "item_id", "type", "value", "timestamp"]
    assert frame["value"].dtype == "float64" and frame["timestamp"].dtype == "float64"
    for column in ("user_id", "item_id", "type"):
        assert pd.api.types.is_string_dtype(frame[column]), column
    got = sorted(zip(frame["user_id"], frame["item_id"], frame["type"], strict=True))
    assert got == [("anon", "c", "view"), ("u1", "a", "rating"), ("u1", "b", "view")]
    rated = frame[frame["item_id"] == "a"].iloc[0]
    assert rated["value"] == 4.5 and rated["timestamp"] == T0
    assert pd.isna(frame[frame["item_id"] == "b"].iloc[0]["value"])

    only_ratings = stores.events.interaction_frame(types=["rating"])
    assert list(only_ratings["item_id"]) == ["a"]


def test_counts(stores: Stores):
    assert stores.events.count_by_type() == {}
    assert stores.events.count_users() == 0 and stores.events.count_items() == 0
    stores.events.add_events(
        [
            event("c1", user_id="u1", item_id="a", type="view"),
            event("c2", user_id="u1", item_id="b", type="view"),
            event("c3", user_id="u2", item_id="a", type="purchase"),
            event("c4", user_id=None, anonymous_id="anon", item_id=None, type="search"),
        ]
    )
    assert stores.events.count_by_type() == {"purchase": 1, "search": 1, "view": 2}
    assert stores.events.count_users() == 3
    assert stores.events.count_items() == 2
    assert stores.events.count() == 4
    # what arrived after a moment (a model version's creation): received_at, not timestamp
    stores.events.add_events([event("c5", received_at=T0 + 100, timestamp=T0 - 1_000)])
    assert stores.events.count_received_since(T0 + 5) == 1
    assert stores.events.count_received_since(T0) == 5
    assert stores.events.count_received_since(T0 + 100) == 0


def test_erase_user_removes_everything_of_that_user_only(stores: Stores):
    stores.events.add_events(
        [
            event("g1", user_id="gone", item_id="a"),
            event("g2", user_id="gone", item_id=None, type="search"),
            event("g3", user_id=None, anonymous_id="gone", item_id="b"),
            event("k1", user_id="kept", item_id="a"),
            event("k2", user_id=None, anonymous_id="kept-anon", item_id="b"),
        ]
    )
    stores.users.upsert_users([user("gone", {"age": 40}), user("kept", {"age": 30})])
    stores.cache.set("user:gone:recs", [1, 2], 60)
    stores.cache.set("user:kept:recs", [3], 60)

    removed = stores.erase_user("gone")

    assert removed["events"] == 3 and removed["users"] == 1 and removed["cache"] == 1
    assert stores.events.user_events("gone") == []
    assert stores.events.user_history("gone") == []
    assert stores.users.get_user("gone") is None
    assert stores.cache.get("user:gone:recs") is None
    assert {r["event_id"] for r in stores.events.user_events("kept")} == {"k1"}
    assert stores.events.existing_event_ids(["k1", "k2"]) == {"k1", "k2"}
    assert stores.users.get_user("kept")["traits"] == {"age": 30}
    assert stores.cache.get("user:kept:recs") == [3]
    assert stores.erase_user("gone")["events"] == 0


# catalog ------------------------------------------------------------------------------------


def test_catalog_upsert_replaces_the_whole_item(stores: Stores):
    stores.catalog.upsert_items(
        [item("i1", title="First", categories=["A/B"], tags=["t"], price=9.5, available=False)]
    )
    stored = stores.catalog.get_item("i1")
    assert stored["title"] == "First" and stored["categories"] == ["A/B"]
    assert stored["price"] == 9.5 and stored["available"] is False

    stores.catalog.upsert_items([item("i1", text="only text now", updated_at=T0 + 1)])
    replaced = stores.catalog.get_item("i1")
    assert replaced["title"] is None and replaced["price"] is None
    assert replaced["categories"] == [] and replaced["tags"] == []
    assert replaced["available"] is True and replaced["text"] == "only text now"
    assert replaced["updated_at"] == T0 + 1
    assert stores.catalog.count() == 1
    assert stores.catalog.get_item("missing") is None


def test_catalog_upsert_with_a_repeated_id_keeps_the_last(stores: Stores):
    stores.catalog.upsert_items([item("r1", title="old"), item("r2"), item("r1", title="new")])
    assert stores.catalog.get_item("r1")["title"] == "new"
    assert stores.catalog.count() == 2


def test_get_items_returns_only_known_ids(stores: Stores):
    stores.catalog.upsert_items([item(f"g{k}", title=f"T{k}") for k in range(5)])
    found = stores.catalog.get_items(["g3", "nope", "g1", "g3"])
    assert set(found) == {"g1", "g3"}
    assert found["g3"]["title"] == "T3"
    assert stores.catalog.get_items([]) == {}


def test_list_items_cursor_walks_every_page_once(stores: Stores):
    ids = [f"item-{k}" for k in range(23)] + ["Zebra", "ärger", "日本", "a b", "x/y"]
    stores.catalog.upsert_items([item(i) for i in ids])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = stores.catalog.list_items(cursor, limit=6)
        pages += 1
        assert len(page.data) <= 6
        seen.extend(row["item_id"] for row in page.data)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert pages < 20
    assert pages == 5
    assert len(seen) == len(set(seen)) == len(ids)
    assert set(seen) == set(ids)
    whole = stores.catalog.list_items(limit=1000)
    assert whole.next_cursor is None and len(whole.data) == len(ids)


def test_exact_last_page_has_no_cursor(stores: Stores):
    stores.catalog.upsert_items([item(f"p{k}") for k in range(4)])
    first = stores.catalog.list_items(limit=2)
    second = stores.catalog.list_items(first.next_cursor, limit=2)
    assert len(second.data) == 2 and second.next_cursor is None


@pytest.mark.parametrize("cursor", ["a", "_w", "AA", "%%%", "!!!!"])
def test_bad_cursor_is_a_validation_error(stores: Stores, cursor: str):
    stores.catalog.upsert_items([item("c1")])
    stores.users.upsert_users([user("c1")])
    with pytest.raises(ValidationError):
        stores.catalog.list_items(cursor)
    with pytest.raises(ValidationError):
        stores.users.list_users(cursor)


def test_unavailable_item_ids(stores: Stores):
    assert stores.catalog.unavailable_item_ids() == set()
    stores.catalog.upsert_items(
        [item("on"), item("off1", available=False), item("off2", available=False)]
    )
    assert stores.catalog.unavailable_item_ids() == {"off1", "off2"}
    stores.catalog.upsert_items([item("off1", available=True)])
    assert stores.catalog.unavailable_item_ids() == {"off2"}
    assert stores.catalog.delete_item("off2") is True
    assert stores.catalog.delete_item("off2") is False
    # a deleted item is never to be shown, whatever it was
    assert stores.catalog.unavailable_item_ids() == {"off2"}
    assert stores.catalog.delete_item("on") is True
    assert stores.catalog.unavailable_item_ids() == {"off2", "on"}


def test_deleted_items_are_remembered_until_written_again(stores: Stores):
    stores.catalog.upsert_items([item("a"), item("b"), item("c")])
    assert stores.catalog.deleted_item_ids() == set()
    assert stores.catalog.delete_item("a") is True
    assert stores.catalog.delete_item("events-only") is False  # never in the catalog
    assert stores.catalog.deleted_item_ids() == {"a", "events-only"}
    assert stores.catalog.get_item("a") is None
    assert set(stores.catalog.item_frame()["item_id"]) == {"b", "c"}
    assert stores.catalog.count() == 2
    assert stores.catalog.delete_items(["b", "b", "c", "ghost"]) == {"b", "c"}
    assert stores.catalog.deleted_item_ids() == {"a", "b", "c", "events-only", "ghost"}
    stores.catalog.upsert_items([item("b"), item("c")])
    stores.catalog.upsert_items([item("a", title="back")])  # written again: lifted
    assert stores.catalog.deleted_item_ids() == {"events-only", "ghost"}
    assert stores.catalog.unavailable_item_ids() == {"events-only", "ghost"}
    assert stores.catalog.get_item("a")["title"] == "back"


# users --------------------------------------------------------------------------------------


def test_user_upsert_keeps_created_at(stores: Stores):
    stores.users.upsert_users([user("p1", {"segment": "a"}, at=T0)])
    stores.users.upsert_users([user("p1", {"segment": "b"}, at=T0 + 100)])
    stored = stores.users.get_user("p1")
    assert stored["traits"] == {"segment": "b"}
    assert stored["created_at"] == T0 and stored["updated_at"] == T0 + 100
    assert stores.users.count() == 1
    assert stores.users.get_user("nobody") is None


def test_list_users_pages(stores: Stores):
    stores.users.upsert_users([user(f"user{k:02d}") for k in range(11)])
    first = stores.users.list_users(limit=5)
    second = stores.users.list_users(first.next_cursor, limit=5)
    third = stores.users.list_users(second.next_cursor, limit=5)
    ids = [r["user_id"] for page in (first, second, third) for r in page.data]
    assert ids == [f"user{k:02d}" for k in range(11)]
    assert third.next_cursor is None


# model versions -----------------------------------------------------------------------------


def version(version_id: str, status: str = "champion") -> ModelVersion:
    return ModelVersion(
        version_id=version_id,
        algorithm="item_knn",
        params={"k": 20},
        data_window={"events": 10},
        artifact_uri=f"file:///tmp/{version_id}",
        status=status,
        metrics={"ndcg": 0.5},
        created_at=T0,
    )


def test_model_versions_sequence_and_latest(stores: Stores):
    assert stores.model_versions.latest() is None
    one = stores.model_versions.register(version("v1"))
    two = stores.model_versions.register(version("v2", status="candidate"))
    three = stores.model_versions.register(version("v3"))
    assert one.seq < two.seq < three.seq
    assert stores.model_versions.latest().version_id == "v3"
    assert stores.model_versions.latest("candidate").version_id == "v2"
    # a new champion retires the one before; a candidate is left as it is
    assert stores.model_versions.latest("retired").version_id == "v1"
    assert stores.model_versions.get("v2").status == "candidate"
    # a status change never touches the serving champion
    assert stores.model_versions.set_status(["v3", "v1"], "pruned") == 1
    assert stores.model_versions.get("v3").status == "champion"
    assert stores.model_versions.get("v1").status == "pruned"
    assert [v.version_id for v in stores.model_versions.list_versions()] == ["v3", "v2", "v1"]
    got = stores.model_versions.get("v1")
    assert got.params == {"k": 20} and got.metrics == {"ndcg": 0.5} and got.seq == one.seq
    assert stores.model_versions.get("nope") is None


def test_versions_registered_at_the_same_moment_all_get_a_place(stores: Stores):
    """Regression: a training job and a forgotten copy being saved read the same highest
    sequence number, and the second failed on the unique constraint."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    barrier = Barrier(4)

    def register(k: int) -> int:
        barrier.wait()
        return stores.model_versions.register(version(f"race{k}", status="candidate")).seq

    with ThreadPoolExecutor(4) as pool:
        seqs = list(pool.map(register, range(4)))
    assert len(set(seqs)) == 4
    assert {v.version_id for v in stores.model_versions.list_versions()} == {
        f"race{k}" for k in range(4)
    }
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):  # the same id twice is a caller's error: not retried
        stores.model_versions.register(version("race0", status="candidate"))


# JSON fields --------------------------------------------------------------------------------


NESTED = {
    "ünïcödé": "日本語 — ok ✓ 🎬",
    "nested": {"list": [1, 2.5, None, True, "x"], "deeper": {"a": {"b": []}}},
    "quote": 'he said "hi"\n\ttab',
}


def test_json_fields_round_trip(stores: Stores):
    stores.events.add_events(
        [
            event(
                "j1",
                user_id="üser-1",
                item_id="ítem-🎬",
                context={"locale": "fr-FR", "page": "/accueil"},
                properties=NESTED,
            )
        ]
    )
    (row,) = stores.events.user_events("üser-1")
    assert row["properties"] == NESTED
    assert row["context"] == {"locale": "fr-FR", "page": "/accueil"}
    assert row["item_id"] == "ítem-🎬"

    stores.catalog.upsert_items(
        [
            item(
                "ítem-🎬",
                title="Amélie",
                categories=["Film/Comédie"],
                tags=["パリ"],
                translations={"de": {"title": "Die fabelhafte Welt"}},
                regions=["FR", "DE"],
                properties=NESTED,
            )
        ]
    )
    stored = stores.catalog.get_item("ítem-🎬")
    assert stored["properties"] == NESTED and stored["tags"] == ["パリ"]
    assert stored["translations"] == {"de": {"title": "Die fabelhafte Welt"}}
    assert stored["regions"] == ["FR", "DE"]

    stores.users.upsert_users([user("üser-1", {"name": "Zoë", "likes": ["a", 1, None]})])
    assert stores.users.get_user("üser-1")["traits"] == {"name": "Zoë", "likes": ["a", 1, None]}


def test_json_fields_keep_numbers_beyond_64_bits_and_non_string_keys(stores: Stores):
    """The JSON columns' fast codec (orjson) must not round or refuse what the standard
    library kept: integers beyond 64 bits, long decimals, integer keys (read as text)."""
    odd = {"big": 2**70, "negative": -(2**66), "u64": 2**64 - 1, "decimal": 0.1234567890123456789}
    stores.events.add_events([event("j2", user_id="u-odd", properties={**odd, 7: "seven"})])
    (row,) = stores.events.user_events("u-odd")
    assert row["properties"] == {**odd, "7": "seven"}
    assert isinstance(row["properties"]["big"], int)


# migrations ---------------------------------------------------------------------------------


def test_migrate_is_idempotent(any_settings: Settings, stores: Stores):
    stores.events.add_events([event("keep-me")])
    again = open_stores(any_settings)
    try:
        assert again.events.existing_event_ids(["keep-me"]) == {"keep-me"}
        again.events.add_events([event("after")])
    finally:
        again.close()
    third = open_stores(any_settings)
    try:
        assert third.events.count() == 2
    finally:
        third.close()


def test_item_frame_lists_every_item_with_its_content(stores):
    from attune.ingest.schemas import ItemIn
    from attune.ingest.validation import item_row

    stores.catalog.upsert_items(
        [
            item_row("i1", ItemIn(title="Heat", categories=["Crime"], tags=["heist"])),
            item_row("i2", ItemIn(text="A quiet film", available=False)),
        ]
    )
    frame = stores.catalog.item_frame().set_index("item_id")
    assert set(frame.index) == {"i1", "i2"}
    assert frame.loc["i1", "title"] == "Heat" and list(frame.loc["i1", "categories"]) == ["Crime"]
    assert not frame.loc["i2", "available"]


def test_item_frame_carries_the_fields_filters_read(stores):
    from attune.ingest.schemas import ItemIn
    from attune.ingest.validation import item_row

    item = ItemIn(
        price=9.5,
        regions=["FR"],
        language="fr",
        created_at=1_700_000_000,
        properties={"brand": "acme"},
    )
    stores.catalog.upsert_items([item_row("i1", item), item_row("i2", ItemIn())])
    frame = stores.catalog.item_frame().set_index("item_id")
    assert frame.loc["i1", "price"] == 9.5 and list(frame.loc["i1", "regions"]) == ["FR"]
    assert frame.loc["i1", "language"] == "fr" and frame.loc["i1", "created_at"] == 1_700_000_000
    assert frame.loc["i1", "properties"] == {"brand": "acme"}
    assert pd.isna(frame.loc["i2", "price"]) and frame.loc["i2", "regions"] is None


def test_catalog_content_stamp_changes_with_every_write_and_delete(stores):
    from attune.ingest.schemas import ItemIn
    from attune.ingest.validation import item_row

    empty = stores.catalog.content_stamp()
    assert stores.catalog.content_stamp() == empty
    stores.catalog.upsert_items([item_row("i1", ItemIn(), now=100.0)])
    one = stores.catalog.content_stamp()
    assert one != empty and stores.catalog.content_stamp() == one
    stores.catalog.upsert_items([item_row("i1", ItemIn(price=3), now=101.0)])
    two = stores.catalog.content_stamp()
    assert two not in (empty, one)
    stores.catalog.delete_item("i1")
    assert stores.catalog.content_stamp() not in (empty, one, two)


def test_catalog_changes_since_a_stamp_name_the_items_written_or_deleted(stores):
    catalog = stores.catalog
    start = catalog.content_stamp()
    assert catalog.changes_since(start) == (start, [])
    catalog.upsert_items([item("a"), item("b")])
    catalog.upsert_items([item("c"), item("a", title="A")])
    catalog.delete_items(["b", "only-in-events"])
    now = catalog.content_stamp()
    assert catalog.changes_since(start) == (now, ["a", "b", "c", "only-in-events"])
    middle = str(int(start) + 2)  # after the two upserts
    assert catalog.changes_since(middle) == (now, ["b", "only-in-events"])
    assert catalog.changes_since(now) == (now, [])
    # more ids than the reader wants, an unknown or future stamp: re-read it all
    assert catalog.changes_since(start, limit=3) is None
    assert catalog.changes_since("not a version") is None
    assert catalog.changes_since(str(int(now) + 5)) is None
    # the frame of just some items, in the columns of the whole one
    part = catalog.item_frame(["c", "a", "nobody"]).set_index("item_id")
    assert sorted(part.index) == ["a", "c"] and part.loc["a", "title"] == "A"
    assert list(catalog.item_frame(["a"]).columns) == list(catalog.item_frame().columns)


def test_catalog_changes_too_many_to_list_or_pruned_ask_for_a_whole_read(stores, monkeypatch):
    from attune.store.sql import catalog as sql_catalog

    monkeypatch.setattr(sql_catalog, "LOGGED_IDS", 2)
    start = stores.catalog.content_stamp()
    stores.catalog.upsert_items([item("a"), item("b"), item("c")])  # logged without ids
    assert stores.catalog.changes_since(start) is None
    since_bulk = stores.catalog.content_stamp()
    stores.catalog.upsert_items([item("d")])
    assert stores.catalog.changes_since(since_bulk) == (stores.catalog.content_stamp(), ["d"])
    monkeypatch.setattr(sql_catalog, "PRUNE_EVERY", 1)
    monkeypatch.setattr(sql_catalog, "KEPT_CHANGES", 1)
    stores.catalog.upsert_items([item("e")])  # prunes every row but its own
    assert stores.catalog.changes_since(since_bulk) is None


def test_concurrent_catalog_writes_get_versions_in_turn_and_all_are_logged(stores):
    from concurrent.futures import ThreadPoolExecutor

    start = int(stores.catalog.content_stamp())

    def write(k: int) -> None:
        for j in range(5):
            stores.catalog.upsert_items([item(f"w{k}-{j}"), item(f"shared-{j}")])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    changes = stores.catalog.changes_since(str(start))
    assert changes is not None
    stamp, ids = changes
    assert int(stamp) == start + 20
    assert set(ids) == {f"w{k}-{j}" for k in range(4) for j in range(5)} | {
        f"shared-{j}" for j in range(5)
    }
