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
