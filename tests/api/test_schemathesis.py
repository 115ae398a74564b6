"""Schemathesis against the published contract: generated requests to every operation get
no 5xx and answers that match ``/openapi.json`` (status, content type, body, headers).

Runs on the ASGI app (a trained SQLite deployment, authenticated with the admin key), with
a fixed seed so a failure reproduces; at least 1,000 requests in all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

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


@pytest.fixture
def served(settings: Settings, sqlite_stores: Stores) -> Iterator[FastAPI]:
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    train(settings, sqlite_stores)
    app = create_app(settings, sqlite_stores)
    with TestClient(app):  # runs the lifespan: the app's services exist
        yield app


def test_generated_requests_get_no_5xx_and_conform_to_the_schema(served: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served)
    calls = 0
    failures: list[str] = []
    started = time.monotonic()
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
            response = case.call(headers=AUTH)
            calls += 1
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # no parameters to break (GET /healthz)
        # collect every operation's failure, then report them all (schemathesis raises a
        # BaseExceptionGroup of its check failures)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} ({mode.value}): {exc}"[:2_000])
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert calls >= MIN_REQUESTS, f"only {calls} requests in {elapsed:.0f} s"
