"""Schemathesis against the published contract: generated requests to every operation get
no 5xx and answers that match ``/openapi.json`` (status, content type, body, headers).

Two transports, the same checks: the ASGI app in process, and a real uvicorn server on a
loopback port whose schema is loaded over HTTP (as a client would). Both serve a trained
SQLite deployment, are called with the admin key, use a fixed seed so a failure
reproduces, and send at least 1,000 requests each.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode  # noqa: E402

from attune.api.app import create_app  # noqa: E402
from attune.config import Settings  # noqa: E402
from attune.ingest.service import IngestService  # noqa: E402
from attune.store.factory import Stores  # noqa: E402
from attune.training.pipeline import train  # noqa: E402
from tests.conftest import AUTH, two_taste_events  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 10}
"""Valid requests, and requests that break the schema (they must get a 4xx, never a 5xx)."""
MIN_REQUESTS = 1_000
SERVER_START_SECONDS = 20.0
REQUEST_LINE_LIMIT = 60 * 1024
"""Past about 64 KiB of request line (negative mode makes 100 KiB–1 MiB query strings)
uvicorn's HTTP parser refuses the request with a plain-text 400 before the app sees it:
a transport limit outside the app's contract (docs/api.md, "Request size limits")."""


def exercise_every_operation(schema: Any, **call_options: Any) -> tuple[int, list[str]]:
    """Send generated requests (both modes) to every operation and check each answer.

    Returns:
        The number of requests sent, and one message per operation and mode that failed
        a check (all of them, so one run shows every broken operation).
    """
    calls = 0
    failures: list[str] = []
    runs = [
        (result.ok(), mode)
        for result in schema.get_all_operations()
        for mode in EXAMPLES_PER_OPERATION
    ]
    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION[mode],
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            nonlocal calls
            response = case.call(headers=AUTH, **call_options)
            calls += 1
            if refused_by_the_http_server(response):
                return
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # no parameters to break (GET /healthz)
        # collect every operation's failure, then report them all (schemathesis raises a
        # BaseExceptionGroup of its check failures)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} ({mode.value}): {exc}"[:2_000])
    return calls, failures


def refused_by_the_http_server(response: Any) -> bool:
    """True only for uvicorn's own 400 to an over-long request line; any other answer to
    a long request is checked like every other."""
    return (
        len(response.request.url) > REQUEST_LINE_LIMIT
        and response.status_code == 400
        and response.text == "Invalid HTTP request received."
    )


def assert_clean_run(calls: int, failures: list[str], started: float) -> None:
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert calls >= MIN_REQUESTS, f"only {calls} requests in {elapsed:.0f} s"


@pytest.fixture
def deployment(settings: Settings, sqlite_stores: Stores) -> Stores:
    """A SQLite deployment holding :func:`two_taste_events` and a trained model version."""
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    train(settings, sqlite_stores)
    return sqlite_stores


@pytest.fixture
def served(settings: Settings, deployment: Stores) -> Iterator[FastAPI]:
    app = create_app(settings, deployment)
    with TestClient(app):  # runs the lifespan: the app's services exist
        yield app


@pytest.fixture
def server_url(settings: Settings, deployment: Stores) -> Iterator[str]:
    """Base URL of a uvicorn server on a free loopback port, serving the deployment the
    way ``attune serve`` does (the app opens its own stores from settings)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))  # the kernel picks a free port: no race with others
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, f"uvicorn not up in {SERVER_START_SECONDS} s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_SECONDS)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


def test_generated_requests_get_no_5xx_and_conform_to_the_schema(served: FastAPI) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_asgi("/openapi.json", served)
    assert_clean_run(*exercise_every_operation(schema), started)


def test_a_running_server_answers_generated_requests_within_its_schema(server_url: str) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json", timeout=10)
    assert schema.get_base_url().rstrip("/") == server_url  # requests go to the server, over HTTP
    with requests.Session() as session:  # one keep-alive connection for every request
        calls, failures = exercise_every_operation(schema, session=session, timeout=10)
    assert_clean_run(calls, failures, started)
