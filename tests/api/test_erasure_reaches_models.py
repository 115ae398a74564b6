"""Erasure through the API changes what others are recommended, at once."""

from __future__ import annotations

import pytest

from attune.training.pipeline import train


def events() -> list[dict]:
    """Thirty people share the a-items; only "bridge" links a0 to the item "x"."""
    rows = []
    for u in range(30):
        for k in range(5):
            if (u + k) % 3:
                rows.append(
                    {
                        "user_id": f"f{u}",
                        "item_id": f"a{k}",
                        "type": "view",
                        "timestamp": 1_700_000_000 + u * 10 + k,
                    }
                )
    rows += [
        {"user_id": "bridge", "item_id": "a0", "type": "view", "timestamp": 1_700_001_000},
        {"user_id": "bridge", "item_id": "x", "type": "view", "timestamp": 1_700_001_001},
        {"user_id": "neighbour", "item_id": "a0", "type": "view", "timestamp": 1_700_001_002},
    ]
    return rows


@pytest.mark.parametrize("algorithm", ["item_knn", "ease", "user_knn"])
def test_erasing_one_person_changes_a_neighbours_list(client, stores, any_settings, algorithm):
    assert client.post("/v1/events", json={"events": events()}).status_code == 200
    train(any_settings, stores, algorithm=algorithm)
    services = client.app.state.services
    services.models.refresh()

    def listed() -> list[str]:
        response = client.get("/v1/users/neighbour/recommendations", params={"n": 10})
        assert response.status_code == 200
        return [it["item_id"] for it in response.json()["items"]]

    assert "x" in listed()  # only because of "bridge"
    assert client.delete("/v1/users/bridge").status_code == 200
    assert "x" not in listed()  # at once, from the loaded model
    assert services.models.wait_for_jobs(timeout=120)
    services.models.refresh()
    assert "x" not in listed()  # and from the version that replaced it
