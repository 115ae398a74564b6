"""A request's reads of one person share one pooled connection."""

from __future__ import annotations

from sqlalchemy import event

from attune.store.factory import Stores


def _checkouts(stores: Stores) -> list[int]:
    seen: list[int] = []
    event.listen(stores.engine, "checkout", lambda *args: seen.append(1))
    return seen


def test_reads_inside_share_one_connection(stores: Stores) -> None:
    stores.preferences.put("ana", {"liked_categories": ["Drama"]})
    stores.consent.set("ana", personalization=True)
    seen = _checkouts(stores)
    with stores.reads():
        with stores.reads():  # nested: still the one connection
            history = stores.events.user_history("ana", limit=10)
            preferences = stores.preferences.get("ana")
        consent = stores.consent.get("ana")
        profile = stores.users.get_user("ana")
    assert len(seen) == 1
    assert history == [] and profile is None
    assert preferences == {"liked_categories": ["Drama"]}
    assert consent is not None and consent.personalization is True
    stores.preferences.get("ana")  # outside: a connection of its own again
    assert len(seen) == 2


def test_writes_inside_still_commit_on_their_own(stores: Stores) -> None:
    with stores.reads():
        stores.preferences.put("bo", {"blocked_items": ["x"]})  # a write takes its own
        assert stores.preferences.get("bo") == {"blocked_items": ["x"]}
    assert stores.preferences.get("bo") == {"blocked_items": ["x"]}


def test_a_prepared_read_gives_the_rows_execute_gives(stores: Stores) -> None:
    """JSON decoded, booleans as bool, LIMIT with its implied OFFSET: the same rows as
    SQLAlchemy's own execution, on every backend."""
    from sqlalchemy import bindparam, select

    from attune.store.sql._util import PreparedRead
    from attune.store.sql.schema import user_consent, user_preferences

    stores.preferences.put("ana", {"liked_items": ["x"], "diversity": 0.5})
    stores.consent.set("ana", tracking=False, personalization=True)
    queries = [
        select(user_preferences.c.user_id, user_preferences.c.preferences).where(
            user_preferences.c.user_id == bindparam("user")
        ),
        select(user_consent)
        .where(user_consent.c.user_id == bindparam("user"))
        .limit(bindparam("limit")),
    ]
    with stores.engine.connect() as conn:
        for query in queries:
            params = {"user": "ana", "limit": 5}
            expected = [tuple(row) for row in conn.execute(query, params)]
            assert PreparedRead(query).rows(conn, params) == expected
            assert PreparedRead(query).rows(conn, {**params, "user": "nobody"}) == []
        consent = PreparedRead(queries[1]).mapping(conn, {"user": "ana", "limit": 1})
    assert consent is not None and consent["tracking"] is False
    assert consent["personalization"] is True
