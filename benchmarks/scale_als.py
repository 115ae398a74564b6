#!/usr/bin/env python3
"""Scale benchmark: ALS through Attune against calling ``implicit`` directly.

    .venv/bin/python benchmarks/scale_als.py [--interactions 10000000] [--users 500000]
                                             [--items 50000] [--write BENCHMARKS.md]

A synthetic data set (Zipf-like item popularity, log-normal user activity) is made
from a seed. Each side runs in its own process, so peak memory (max RSS) is its own:

* implicit: the user × item CSR matrix, then ``AlternatingLeastSquares.fit``;
* Attune: the same interactions as an event frame with string ids (what
  ``attune train`` reads from the store), then ``build_dataset`` + ``ALSRecommender.fit``
  — id mapping, weighting and matrix building included.

Both use 64 factors, 15 iterations, all cores, BLAS limited to one thread (implicit's
advice). The ratio Attune / implicit is what to read; absolute times depend on the box.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"factors": 64, "iterations": 15, "regularization": 10.0, "alpha": 2.0}


def synthetic(
    n: int, n_users: int, n_items: int, seed: int = 7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user codes, item codes, timestamps) of ``n`` distinct interactions."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    users = rng.choice(n_users, size=int(n * 1.05), p=activity / activity.sum())
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    pairs = np.unique(users.astype(np.int64) * n_items + items)
    pairs = rng.permutation(pairs)[:n]
    times = 1_600_000_000 + rng.integers(0, 365 * 86_400, len(pairs))
    return (pairs // n_items).astype(np.int32), (pairs % n_items).astype(np.int32), times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_side(side: str, n: int, n_users: int, n_items: int) -> dict:
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    users, items, times = synthetic(n, n_users, n_items)
    baseline = peak_rss_mb()
    if side == "implicit":
        from implicit.cpu.als import AlternatingLeastSquares

        started = time.perf_counter()
        matrix = sp.csr_matrix(
            (np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items)
        )
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**PARAMS, random_state=42, dtype=np.float32)
            model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    else:
        import pandas as pd

        from attune.features.interactions import WeightPolicy, build_dataset
        from attune.models.registry import create_model

        frame = pd.DataFrame(
            {
                "user_id": np.char.add("u", users.astype(str)).astype(object),
                "item_id": np.char.add("i", items.astype(str)).astype(object),
                "type": "view",
                "value": np.nan,
                "timestamp": times.astype(np.float64),
            }
        )
        del users, items, times
        started = time.perf_counter()
        dataset = build_dataset(frame, WeightPolicy())
        create_model("als", PARAMS).fit(dataset)
        seconds = time.perf_counter() - started
    return {
        "side": side,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_fit_mb": round(baseline, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--side", choices=["implicit", "attune"], help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.interactions, args.users, args.items)))
        return
    results = {}
    for side in ("implicit", "attune"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--side",
                side,
                "--interactions",
                str(args.interactions),
                "--users",
                str(args.users),
                "--items",
                str(args.items),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
        print(results[side], flush=True)
    ratio = results["attune"]["seconds"] / results["implicit"]["seconds"]
    text = "\n".join(
        [
            "## Scale: ALS through Attune vs implicit directly",
            "",
            f"Command: `.venv/bin/python benchmarks/scale_als.py --interactions {args.interactions}"
            f" --users {args.users} --items {args.items}`; {datetime.now(UTC):%Y-%m-%d}, "
            f"{platform.machine()} {os.cpu_count()} cores. Synthetic data, {PARAMS}.",
            "",
            "| side | seconds | peak RSS (MB) |",
            "|---|---:|---:|",
            f"| implicit directly (CSR matrix → fit) | {results['implicit']['seconds']} "
            f"| {results['implicit']['peak_rss_mb']} |",
            f"| Attune (string-id events → dataset → fit) | {results['attune']['seconds']} "
            f"| {results['attune']['peak_rss_mb']} |",
            "",
            f"Attune / implicit time: × {ratio:.2f} (target ≤ 1.3); Attune peak memory "
            f"{results['attune']['peak_rss_mb'] / 1024:.2f} GB (target < 6 GB).",
            "",
        ]
    )
    print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Scale", text)


if __name__ == "__main__":
    main()
