"""`attune serve --workers N`: one process by default; several only with shared state."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from attune.cli import app
from tests.conftest import REDIS_URL


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs `attune serve ...` with uvicorn.run replaced: returns (result, run arguments)."""
    import uvicorn

    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATTUNE_REDIS_PREFIX", f"attune-serve-test-{uuid.uuid4().hex[:8]}")
    for name in ("ATTUNE_DATABASE_URL", "ATTUNE_REDIS_URL", "ATTUNE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    calls: list[dict[str, Any]] = []

    def fake_run(target: Any, **options: Any) -> None:
        calls.append({"target": target, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)

    def invoke(*args: str) -> tuple[Any, dict[str, Any] | None]:
        result = CliRunner().invoke(app, ["serve", *args], catch_exceptions=False)
        return result, (calls[-1] if calls else None)

    return invoke


def test_one_process_serves_the_app_it_built(serve) -> None:
    result, run = serve("--port", "8123")
    assert result.exit_code == 0, result.output
    assert run is not None and run["workers"] is None and run["factory"] is False
    assert hasattr(run["target"], "router") and run["port"] == 8123


def test_several_processes_are_refused_without_redis(serve) -> None:
    result, run = serve("--workers", "2")
    assert result.exit_code == 1 and run is None
    assert "ATTUNE_REDIS_URL" in result.output


def test_several_processes_are_refused_when_redis_does_not_answer(serve, monkeypatch) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("ATTUNE_REDIS_URL", "redis://127.0.0.1:1/0")
    result, run = serve("--workers", "2")
    assert result.exit_code == 1 and run is None
    assert "cannot use ATTUNE_REDIS_URL" in result.output


def test_several_processes_share_redis_and_start_migrated(
    serve, monkeypatch, tmp_path, redis_client
) -> None:
    monkeypatch.setenv("ATTUNE_REDIS_URL", REDIS_URL)
    result, run = serve("--workers", "3")
    assert result.exit_code == 0, result.output
    assert run is not None
    # each process builds its own app from the environment
    assert run["target"] == "attune.api.app:create_app"
    assert run["factory"] is True and run["workers"] == 3
    # what every process would race to create exists before any starts
    assert (tmp_path / "data" / "attune.db").exists()
    assert (tmp_path / "data" / "secret").exists()


def test_workers_must_be_positive(serve) -> None:
    result, run = serve("--workers", "0")
    assert result.exit_code == 2 and run is None
