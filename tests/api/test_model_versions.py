"""``/v1/models``: listing versions and serving an earlier one again over the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from attune.training.pipeline import train
from tests.conftest import AUTH, two_taste_events


def test_list_and_roll_back_over_the_api(stores, any_settings):
    from attune.api.app import create_app

    # the server checks for new versions once an hour: only the rollback makes it look
    settings = any_settings.model_copy(update={"model_refresh_seconds": 3600})
    with TestClient(create_app(settings, stores), headers=AUTH) as client:
        _list_and_roll_back(client, stores, settings)


def _list_and_roll_back(client, stores, any_settings) -> None:
    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    good = train(any_settings, stores, algorithm="item_knn")
    bad = train(any_settings, stores, algorithm="popularity")
    client.app.state.services.models.refresh()

    listed = client.get("/v1/models").json()["data"]
    assert [(v["version_id"], v["status"], v["serving"]) for v in listed] == [
        (bad.version_id, "champion", True),
        (good.version_id, "retired", False),
    ]
    detail = client.get(f"/v1/models/{good.version_id}").json()
    assert detail["algorithm"] == "item_knn" and detail["data_window"]["events"] == 120

    def first_items() -> list[str]:
        response = client.get("/v1/users/u0/recommendations", params={"n": 2})
        assert response.status_code == 200
        return [it["item_id"] for it in response.json()["items"]]

    assert client.get("/v1/users/u0/recommendations").json()["model_version"] == bad.version_id

    response = client.post(f"/v1/models/{good.version_id}/rollback")
    assert response.status_code == 200, response.text
    back = response.json()
    assert back["serving"] and back["rolled_back_to"] == good.version_id
    answer = client.get("/v1/users/u0/recommendations", params={"n": 2}).json()
    assert answer["model_version"] == back["version_id"], "this server switched at once"
    assert all(i.startswith("a") for i in first_items()), "item-kNN's answer for an a-person"

    entries = client.get("/v1/audit", params={"action": "model.rollback"}).json()["data"]
    assert [e["details"]["to"] for e in entries] == [good.version_id]


def test_rollback_errors_name_the_reason(client, stores, any_settings):
    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    only = train(any_settings, stores, algorithm="item_knn")
    missing = client.post("/v1/models/nope/rollback")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    serving = client.post(f"/v1/models/{only.version_id}/rollback")
    assert serving.status_code == 409
    assert "already serving" in serving.json()["error"]["message"]
    assert client.get("/v1/models/nope").status_code == 404
    bad_id = client.post("/v1/models/has%20space/rollback")
    assert bad_id.status_code == 422


def _wait_for_job(client, job_id: str, seconds: float = 120.0) -> dict:
    import time

    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/models/train/{job_id}").json()
        if job["status"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_training_over_the_api_is_a_job_that_ends_in_a_served_version(client, stores):
    """The real path: the job fits in a child process; the request answers at once,
    and the version the job made serves as soon as the job says it succeeded."""
    empty = client.post("/v1/models/train")
    assert empty.status_code == 202, empty.text
    failed = _wait_for_job(client, empty.json()["job_id"])
    assert failed["status"] == "failed" and "no events" in failed["error"]
    assert failed["finished_at"] is not None and failed["version_id"] is None

    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    started = client.post("/v1/models/train", json={})
    assert started.status_code == 202
    job = started.json()
    assert job["status"] == "running" and job["tune_budget_seconds"] is None
    done = _wait_for_job(client, job["job_id"])
    assert done["status"] == "succeeded", done
    served = client.get("/v1/users/u0/recommendations").json()
    assert served["model_version"] == done["version_id"], "this server loaded it at once"
    assert client.get(f"/v1/models/{done['version_id']}").json()["serving"] is True
    # with a version held, the next one is loaded beside it before the job says so
    again = _wait_for_job(client, client.post("/v1/models/train").json()["job_id"])
    assert again["status"] == "succeeded" and again["version_id"] != done["version_id"]
    served = client.get("/v1/users/u0/recommendations").json()
    assert served["model_version"] == again["version_id"]
    entries = client.get("/v1/audit", params={"action": "model.train"}).json()["data"]
    assert [e["details"]["status"] for e in entries if e["target"] == job["job_id"]] == [
        "succeeded",
        "running",
    ]


def test_one_training_job_at_a_time_and_clear_refusals(client, stores, any_settings):
    import threading

    release = threading.Event()

    def slow_trainer(_settings, budget, _gate):
        release.wait(30)
        raise RuntimeError(f"stopped by the test (budget {budget})")

    client.app.state.train_jobs.trainer = slow_trainer
    first = client.post("/v1/models/train", json={"tune_budget_seconds": 60})
    assert first.status_code == 202 and first.json()["tune_budget_seconds"] == 60
    second = client.post("/v1/models/train")
    assert second.status_code == 409
    assert first.json()["job_id"] in second.json()["error"]["message"]
    release.set()
    ended = _wait_for_job(client, first.json()["job_id"])
    assert ended["status"] == "failed" and "budget 60" in ended["error"]

    too_short = client.post("/v1/models/train", json={"tune_budget_seconds": 1})
    assert too_short.status_code == 422
    assert "tune_budget_seconds" in str(too_short.json()["error"]["details"])
    unknown_field = client.post("/v1/models/train", json={"budget": 60})
    assert unknown_field.status_code == 422
    for odd in ({"gate": "yes"}, {"tune_budget_seconds": "NaN"}):  # once a job, and "≤ 86400"
        refused = client.post("/v1/models/train", json=odd)
        assert refused.status_code == 422, odd
        assert "86400" not in refused.text
    assert client.get("/v1/models/train/train-0123456789ab").status_code == 404
    assert client.get("/v1/models/train/not-a-job").status_code == 422


def _sleeping_fit(_settings, _budget, _gate):
    """A fit in a child process, as the real trainer runs one, that takes a minute."""
    import multiprocessing
    import time as clock

    from attune.training.schedule import CHILD_NAME

    child = multiprocessing.get_context("spawn").Process(
        target=clock.sleep, args=(60,), name=CHILD_NAME, daemon=True
    )
    child.start()
    child.join()
    raise RuntimeError(f"the fit ended with exit code {child.exitcode}")


def test_a_server_that_stops_ends_its_fits_and_says_so(any_settings, stores):
    """A fit left running after its server stopped registered and promoted a version
    with no server running, and its job said 'running' for hours."""
    import multiprocessing
    import time as clock

    from fastapi.testclient import TestClient

    from attune.api.app import create_app
    from attune.training.jobs import STOPPED, find_job
    from attune.training.schedule import CHILD_NAME
    from tests.conftest import AUTH

    with TestClient(create_app(any_settings, stores), headers=AUTH) as api:
        api.app.state.train_jobs.trainer = _sleeping_fit
        job_id = api.post("/v1/models/train").json()["job_id"]
        deadline = clock.monotonic() + 30
        while not any(c.name == CHILD_NAME for c in multiprocessing.active_children()):
            assert clock.monotonic() < deadline, "the fit never started"
            clock.sleep(0.05)
        started = clock.monotonic()
    assert clock.monotonic() - started < 20  # the shutdown did not wait for the fit
    assert not [c for c in multiprocessing.active_children() if c.name == CHILD_NAME]
    job = find_job(stores, any_settings.workspace, job_id)
    assert job.status == "failed" and job.error == STOPPED


def test_a_job_whose_server_stopped_is_lost(stores):
    from attune.training.jobs import LOST_AFTER_SECONDS, TRAIN_ACTION, find_job

    stores.audit.record("default", "k", TRAIN_ACTION, "train-abc", {"status": "running"})
    entry = stores.audit.list(1, action=TRAIN_ACTION)[0]
    assert find_job(stores, "default", "train-abc", now=entry.at + 60).status == "running"
    later = entry.at + LOST_AFTER_SECONDS + 1
    assert find_job(stores, "default", "train-abc", now=later).status == "lost"


def test_a_held_candidate_is_listed_never_served_and_can_be_rolled_forward_to(
    client, stores, any_settings
):
    from dataclasses import replace

    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    fitted = train(any_settings, stores, algorithm="popularity")
    serving = train(any_settings, stores, algorithm="item_knn")
    gate = {"verdict": "held", "reason": "the serving version predicts … clearly better"}
    held = stores.model_versions.register(  # as if the check had held it back
        replace(
            fitted,
            version_id="held-one",
            status="candidate",
            metrics={"gate": gate},
            seq=0,
        )
    )
    client.app.state.services.models.refresh()

    listed = {v["version_id"]: v for v in client.get("/v1/models").json()["data"]}
    assert (listed["held-one"]["status"], listed["held-one"]["serving"]) == ("candidate", False)
    assert listed["held-one"]["gate"] == "held" and listed[serving.version_id]["serving"]
    detail = client.get("/v1/models/held-one").json()
    assert detail["metrics"]["gate"]["verdict"] == "held"
    answer = client.get("/v1/users/u0/recommendations").json()
    assert answer["model_version"] == serving.version_id

    forward = client.post(f"/v1/models/{held.version_id}/rollback")
    assert forward.status_code == 200 and forward.json()["rolled_back_to"] == "held-one"
    assert forward.json()["gate"] is None  # the verdict stays with the version it judged
    answer = client.get("/v1/users/u0/recommendations").json()
    assert answer["model_version"] == forward.json()["version_id"]


def test_a_gated_training_job_that_the_check_holds_back_leaves_the_champion_serving(
    stores, any_settings
):
    """The real path (child process): a job asked to pass the champion/challenger check,
    after a scraper flooded the events, succeeds with a held candidate."""
    import random

    from attune.api.app import create_app
    from attune.ingest.service import IngestService
    from tests.training.test_gate import START, _own_taste_events, _scraper_flood

    settings = any_settings.model_copy(update={"default_algorithm": "item_knn"})
    seen: dict[int, set[str]] = {u: set() for u in range(200)}
    rng = random.Random(3)
    IngestService(settings, stores).ingest_events(_own_taste_events(200, 8, START, rng, seen))
    champion = train(settings, stores)
    polluted = _scraper_flood(5_000, START + 10_000)
    polluted += _own_taste_events(200, 4, START + 20_000, rng, seen)
    IngestService(settings, stores).ingest_events(polluted)

    with TestClient(create_app(settings, stores), headers=AUTH) as client:
        started = client.post("/v1/models/train", json={"gate": True})
        assert started.status_code == 202 and started.json()["gate"] is True
        done = _wait_for_job(client, started.json()["job_id"])
        assert (done["status"], done["held"]) == ("succeeded", True), done
        held = client.get(f"/v1/models/{done['version_id']}").json()
        assert (held["status"], held["gate"], held["serving"]) == ("candidate", "held", False)
        served = client.get("/v1/users/u0/recommendations").json()
        assert served["model_version"] == champion.version_id
