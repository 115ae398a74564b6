#!/usr/bin/env python3
"""Training time on ML-100K, as a user runs it: plain `attune train`, then with a budget.

    .venv/bin/python benchmarks/train_time.py [--budget 5m] [--write BENCHMARKS.md]

In a fresh data folder: ``attune import movielens`` of the shared ML-100K, then
``attune train`` (no tuning: validated defaults) timed end to end, then
``attune train --tune --budget B`` timed end to end. Targets (issue 3): plain training
under 60 s; a tuned run within its budget.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"


def run(cli: str, args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one CLI command (which must succeed)."""
    started = time.perf_counter()
    subprocess.run([cli, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(budget: str) -> dict[str, float | str]:
    cli = str(ROOT / ".venv" / "bin" / "attune")
    with tempfile.TemporaryDirectory(prefix="attune-train-time-") as tmp:
        env = dict(os.environ, ATTUNE_DATA_DIR=tmp)
        env.pop("ATTUNE_DATABASE_URL", None)
        run(cli, ["import", "movielens", str(ML100K)], env)
        plain = run(cli, ["train"], env)
        tuned = run(cli, ["train", "--tune", "--budget", budget], env)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    load = os.getloadavg()[0]
    return {"plain": plain, "tuned": tuned, "budget": budget, "peak_mb": peak, "load": load}


def markdown(result: dict[str, float | str]) -> str:
    return "\n".join(
        [
            "## Training time (ML-100K, `attune train`)",
            "",
            f"Command: `.venv/bin/python benchmarks/train_time.py --budget {result['budget']}`; "
            f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()} {os.cpu_count()} cores "
            f"({platform.platform()}), load average {result['load']:.1f} at the end. "
            "Fresh data folder, `attune import movielens` of the shared ML-100K first.",
            "",
            "| command | seconds (wall, end to end) | target |",
            "|---|---:|---|",
            f"| `attune train` | {result['plain']:.1f} | < 60 |",
            f"| `attune train --tune --budget {result['budget']}` | {result['tuned']:.1f} "
            f"| within the budget |",
            "",
            f"Peak RSS of the commands: {result['peak_mb']:.0f} MB.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--write", type=Path, help="Replace the section in this file")
    args = parser.parse_args()
    text = markdown(measure(args.budget))
    print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Training time", text)


if __name__ == "__main__":
    main()
