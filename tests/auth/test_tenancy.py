"""Workspaces: each has its own data, models and keys, and no key sees another's data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from attune.auth.manage import create_key
from attune.auth.signing import master_secret
from attune.config import Settings
from attune.store.factory import Stores, open_stores
from attune.training.pipeline import train


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def other(any_settings: Settings, stores: Stores) -> Iterator[tuple[str, Settings]]:
    """A second workspace (unique name), dropped afterwards on PostgreSQL."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings = any_settings.for_workspace(name)
    yield name, settings
    if settings.sql_schema:
        with stores.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.sql_schema}" CASCADE'))


def test_workspace_settings_keep_the_default_layout_and_separate_the_others(tmp_path: Path):
    base = Settings(data_dir=tmp_path)
    assert base.sql_url == f"sqlite:///{(tmp_path / 'attune.db').resolve()}"
    assert base.models_dir == tmp_path / "models" and base.sql_schema is None
    shop = base.for_workspace("shop")
    assert shop.sql_url == f"sqlite:///{(tmp_path / 'workspaces/shop/attune.db').resolve()}"
    assert shop.models_dir == tmp_path / "workspaces" / "shop" / "models"
    pg = Settings(database_url="postgresql://u@h/db").for_workspace("shop")
    assert pg.sql_url == "postgresql+psycopg://u@h/db" and pg.sql_schema == "ws_shop"
    for bad in ("", "Shop", "a/b", "x" * 33, "../x"):
        with pytest.raises(ValueError):
            base.for_workspace(bad)


def test_one_workspaces_key_never_sees_anothers_data(client, trained, other, stores):
    name, settings_b = other
    key_b = create_key(
        stores.keys, stores.audit, master_secret(settings_b), name="b", actor="t", workspace=name
    ).token
    b = bearer(key_b)

    # workspace B starts empty: nothing of the default workspace shows through
    assert client.get("/v1/users/u0/events", headers=b).json()["data"] == []
    assert client.get("/v1/users", headers=b).json()["data"] == []
    assert client.get("/v1/items", headers=b).json()["data"] == []
    assert client.get("/v1/users/u0/recommendations", headers=b).status_code == 503  # no model

    # B's own data goes to B's store, never to the default one
    events = [
        {"user_id": f"p{u}", "item_id": f"x{k}", "type": "view", "timestamp": 1_700_000_000 + k}
        for u in range(6)
        for k in range(u % 3 + 1)
    ]
    response = client.post("/v1/events", json={"events": events}, headers=b)
    assert response.status_code == 200 and response.json()["accepted"] == len(events)
    assert client.put("/v1/items/x0", json={"title": "B item"}, headers=b).status_code == 200
    assert client.put("/v1/users/p0", json={"traits": {"t": 1}}, headers=b).status_code == 200
    assert stores.catalog.get_item("x0") is None and stores.users.get_user("p0") is None
    assert stores.events.user_events("p0") == []

    stores_b = open_stores(settings_b)
    try:
        assert len(stores_b.events.user_events("p0")) == 1
        assert stores_b.events.user_events("u0") == []
        train(settings_b, stores_b)
    finally:
        stores_b.close()

    # B's recommendations come from B's model and items only, whoever is asked about
    for user in ("u0", "p5"):
        recs = client.get(f"/v1/users/{user}/recommendations", headers=b)
        assert recs.status_code == 200, recs.text
        assert {i["item_id"] for i in recs.json()["items"]} <= {"x0", "x1", "x2"}
    assert client.get("/v1/items/a0", headers=b).status_code == 404
    assert client.get("/v1/users/u0", headers=b).status_code == 404

    # and the default workspace's key sees none of B's
    assert client.get("/v1/users/p0/events").json()["data"] == []
    assert client.get("/v1/items/x0").status_code == 404
    default_recs = client.get("/v1/users/u0/recommendations").json()["items"]
    assert not {i["item_id"] for i in default_recs} & {"x0", "x1", "x2"}


def test_keys_and_audit_are_per_workspace(client, other, stores):
    name, settings_b = other
    key_b = create_key(
        stores.keys, stores.audit, master_secret(settings_b), name="b", actor="t", workspace=name
    )
    b = bearer(key_b.token)
    mine = client.post("/v1/keys", json={"name": "b2"}, headers=b).json()
    assert mine["workspace"] == name
    default_key = client.post("/v1/keys", json={"name": "a2"}).json()

    assert {k["key_id"] for k in client.get("/v1/keys", headers=b).json()["data"]} == {
        key_b.key.key_id,
        mine["key_id"],
    }
    assert default_key["key_id"] not in str(client.get("/v1/keys", headers=b).json())
    assert client.delete(f"/v1/keys/{default_key['key_id']}", headers=b).status_code == 404
    assert client.delete(f"/v1/keys/{mine['key_id']}").status_code == 404
    assert client.get("/v1/users", headers=bearer(default_key["key"])).status_code == 200

    audit_b = client.get("/v1/audit", headers=b).json()["data"]
    assert [e["target"] for e in audit_b] == [f"key:{mine['key_id']}"]
    assert f"key:{mine['key_id']}" not in str(client.get("/v1/audit").json())


def test_each_workspace_has_its_own_database(any_settings, other, stores):
    _name, settings_b = other
    opened = open_stores(settings_b)
    try:
        if settings_b.sql_schema:
            schemas = inspect(stores.engine).get_schema_names()
            assert settings_b.sql_schema in schemas
            assert "events" in inspect(stores.engine).get_table_names(settings_b.sql_schema)
        else:
            assert (any_settings.data_dir / "workspaces" / _name / "attune.db").exists()
        assert opened.artifacts.path_for("v1").is_relative_to(settings_b.models_dir)
    finally:
        opened.close()
