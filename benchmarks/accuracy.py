#!/usr/bin/env python3
"""Accuracy benchmark: Attune's default pipeline against tuned peers, one split, one run.

    .venv/bin/python benchmarks/accuracy.py [--budget 5m] [--datasets ml-100k ml-latest-small]
                                            [--write BENCHMARKS.md]

For each data set, the per-user temporal split of PROTOCOL.md (the reference
``split.py``) gives TRAIN and TEST, and the same rule applied to TRAIN gives TRAIN' and
VALID. Then, in this process:

* Attune is used as a user would: ``attune import events train.csv --type view``
  (``value`` = rating), ``attune import items items.csv``, ``attune train --tune --budget B``,
  ``attune batch-recommend --users test_users.txt --n 20``;
* each peer is tuned on TRAIN'/VALID over a fixed grid, refitted on TRAIN with the best
  setting, and asked for 20 items per test user: implicit ALS, implicit BPR, implicit
  item-kNN (cosine and BM25), EASE (closed form, numpy) and popularity;
* every list is scored by the reference ``evaluate.py`` (NDCG@10, Recall@20, ...).

Peers get their library's standard input: the binary user × item matrix of TRAIN.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(SHARED / "protocol"))

from evaluate import Evaluator  # noqa: E402  (the reference scorer, PROTOCOL.md)
from split import temporal_user_split  # noqa: E402  (the reference split)

DATASETS = {
    "ml-100k": SHARED / "data" / "ml-100k",
    "ml-latest-small": SHARED / "data" / "ml-latest-small",
}
N = 20
Lists = dict[str, list[str]]


# ---------------------------------------------------------------- data


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """interactions (user_id, item_id, timestamp, rating) and items (item_id, title, genres)."""
    folder = DATASETS[name]
    if name == "ml-100k":
        inter = pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)
        inter.columns = [c.split(":")[0] for c in inter.columns]
        raw = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
        raw.columns = [c.split(":")[0] for c in raw.columns]
        items = pd.DataFrame(
            {
                "item_id": raw["item_id"],
                "title": raw["movie_title"],
                "genres": raw["class"].str.split().str.join("|"),
            }
        )
    else:
        inter = pd.read_csv(folder / "ratings.csv", dtype=str).rename(
            columns={"userId": "user_id", "movieId": "item_id"}
        )
        raw = pd.read_csv(folder / "movies.csv", dtype=str, keep_default_na=False)
        items = pd.DataFrame(
            {"item_id": raw["movieId"], "title": raw["title"], "genres": raw["genres"]}
        )
    frame = inter[["user_id", "item_id", "timestamp", "rating"]].copy()
    return frame, items


# ---------------------------------------------------------------- peers


class Matrix:
    """TRAIN as a binary user × item CSR matrix, with the id maps."""

    def __init__(self, train: pd.DataFrame) -> None:
        self.users, user_codes = np.unique(train["user_id"].to_numpy(str), return_inverse=True)
        self.items, item_codes = np.unique(train["item_id"].to_numpy(str), return_inverse=True)
        data = np.ones(len(train), dtype=np.float32)
        m = sp.csr_matrix(
            (data, (user_codes, item_codes)), shape=(len(self.users), len(self.items))
        )
        m.data[:] = 1.0
        self.matrix = m
        self.row = {u: i for i, u in enumerate(self.users)}

    def lists(self, users: Iterable[str], scores_for: Callable[[np.ndarray], np.ndarray]) -> Lists:
        users = [u for u in users if u in self.row]
        out: Lists = {}
        for start in range(0, len(users), 1024):
            part = users[start : start + 1024]
            rows = np.array([self.row[u] for u in part])
            scores = np.asarray(scores_for(rows), dtype=np.float64)
            seen = self.matrix[rows].tocoo()
            scores[seen.row, seen.col] = -np.inf
            top = np.argsort(-scores, axis=1, kind="stable")[:, :N]
            for r, user in enumerate(part):
                out[user] = [str(self.items[i]) for i in top[r] if np.isfinite(scores[r, i])]
        return out


def implicit_scores(model, matrix: Matrix) -> Callable[[np.ndarray], np.ndarray]:
    def scores(rows: np.ndarray) -> np.ndarray:
        ids, values = model.recommend(
            rows, matrix.matrix[rows], N=len(matrix.items), filter_already_liked_items=False
        )
        dense = np.full((len(rows), len(matrix.items)), -np.inf)
        np.put_along_axis(dense, ids, values, axis=1)
        return dense

    return scores


def peer_als(params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=params["factors"],
            regularization=params["regularization"],
            alpha=params["alpha"],
            iterations=15,
            random_state=42,
        )
        model.fit(matrix.matrix, show_progress=False)
        return implicit_scores(model, matrix)

    return fit


def peer_bpr(params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=params["factors"],
            learning_rate=params["learning_rate"],
            regularization=params["regularization"],
            iterations=100,
            random_state=42,
        )
        model.fit(matrix.matrix, show_progress=False)
        return implicit_scores(model, matrix)

    return fit


def peer_knn(params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        cls = BM25Recommender if params["kind"] == "bm25" else CosineRecommender
        model = cls(K=params["K"])
        model.fit(matrix.matrix, show_progress=False)
        return implicit_scores(model, matrix)

    return fit


def peer_ease(params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        x = matrix.matrix.astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += params["l2"]
        precision = np.linalg.inv(gram)
        weights = precision / -np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        return lambda rows: np.asarray(matrix.matrix[rows] @ weights)

    return fit


def peer_popularity(_params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        counts = np.asarray(matrix.matrix.sum(axis=0)).ravel()
        return lambda rows: np.tile(counts, (len(rows), 1))

    return fit


def grid(**axes: list) -> list[dict]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


PEERS = {
    "implicit ALS": (
        peer_als,
        grid(factors=[32, 64, 128], regularization=[0.01, 0.1, 1.0, 10.0], alpha=[1.0, 5.0, 20.0]),
    ),
    "implicit BPR": (
        peer_bpr,
        grid(factors=[32, 64, 128], learning_rate=[0.01, 0.05, 0.1], regularization=[0.001, 0.01]),
    ),
    "item-kNN (implicit)": (peer_knn, grid(kind=["cosine", "bm25"], K=[20, 50, 100, 200, 500])),
    "EASE": (peer_ease, grid(l2=[10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0])),
    "popularity": (peer_popularity, [{}]),
}


def tune_peer(
    name: str, inner: pd.DataFrame, valid: pd.DataFrame, train: pd.DataFrame, test_users: list[str]
) -> tuple[dict, float, Lists, float]:
    """Best grid point on TRAIN'/VALID, refitted on TRAIN: (params, valid NDCG, lists, s)."""
    factory, points = PEERS[name]
    inner_matrix = Matrix(inner)
    scorer = Evaluator(inner, valid)
    valid_users = sorted(set(valid["user_id"]))
    best, best_ndcg = points[0], -1.0
    started = time.perf_counter()
    for params in points:
        lists = inner_matrix.lists(valid_users, factory(params)(inner_matrix))
        ndcg = scorer.score(lists)["ndcg@10"]
        if ndcg > best_ndcg:
            best, best_ndcg = params, ndcg
    matrix = Matrix(train)
    lists = matrix.lists(test_users, factory(best)(matrix))
    return best, best_ndcg, lists, time.perf_counter() - started


# ---------------------------------------------------------------- Attune, as a user runs it


def attune_lists(
    train: pd.DataFrame, items: pd.DataFrame, test_users: list[str], budget: str, work: Path
) -> tuple[Lists, dict, float]:
    cli = str(ROOT / ".venv" / "bin" / "attune")
    env = dict(os.environ, ATTUNE_DATA_DIR=str(work / "attune-data"))
    env.pop("ATTUNE_DATABASE_URL", None)
    events = train.rename(columns={"rating": "value"})[["user_id", "item_id", "timestamp", "value"]]
    events.to_csv(work / "train.csv", index=False)
    items.to_csv(work / "items.csv", index=False)
    (work / "test_users.txt").write_text("\n".join(test_users) + "\n")
    started = time.perf_counter()
    for args in (
        ["import", "events", str(work / "train.csv"), "--type", "view"],
        ["import", "items", str(work / "items.csv")],
        ["train", "--tune", "--budget", budget],
        [
            "batch-recommend",
            "--users",
            str(work / "test_users.txt"),
            "--n",
            str(N),
            "--output",
            str(work / "recs.jsonl"),
        ],
    ):
        subprocess.run(
            [cli, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    seconds = time.perf_counter() - started
    lists = {}
    for line in (work / "recs.jsonl").read_text().splitlines():
        row = json.loads(line)
        lists[row["user_id"]] = row["items"]
    stats = json.loads(
        subprocess.run(
            [cli, "stats", "--json"], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    chosen = stats["model_versions"][0]["algorithm"] if stats["model_versions"] else "?"
    return lists, {"chosen": chosen}, seconds


# ---------------------------------------------------------------- report


def run_dataset(name: str, budget: str) -> dict:
    frame, items = load(name)
    train, test = temporal_user_split(frame)
    inner, valid = temporal_user_split(train)
    test_users = sorted(set(test["user_id"]))
    scorer = Evaluator(train, test)
    rows = []
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        lists, info, seconds = attune_lists(train, items, test_users, budget, Path(tmp))
    metrics = scorer.score(lists)
    rows.append(
        {
            "system": f"Attune default (`train --tune --budget {budget}`)",
            "params": info,
            "seconds": round(seconds, 1),
            **metrics,
        }
    )
    print(
        f"[{name}] Attune: NDCG@10 {metrics['ndcg@10']:.4f} ({info['chosen']}, {seconds:.0f} s)",
        flush=True,
    )
    for peer in PEERS:
        params, valid_ndcg, lists, seconds = tune_peer(peer, inner, valid, train, test_users)
        metrics = scorer.score(lists)
        rows.append(
            {
                "system": peer,
                "params": params,
                "valid_ndcg@10": round(valid_ndcg, 4),
                "seconds": round(seconds, 1),
                **metrics,
            }
        )
        print(f"[{name}] {peer}: NDCG@10 {metrics['ndcg@10']:.4f} {params}", flush=True)
    return {"dataset": name, "train_rows": len(train), "test_rows": len(test), "rows": rows}


def markdown(results: list[dict], budget: str) -> str:
    lines = [
        "## Accuracy (PROTOCOL.md, split temporal-user-20)",
        "",
        f"Command: `.venv/bin/python benchmarks/accuracy.py --budget {budget}`; "
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()} {os.cpu_count()} cores "
        f"({platform.platform()}). Peers tuned on TRAIN'/VALID over a fixed grid, refitted "
        "on TRAIN; every list scored by the reference `evaluate.py`.",
        "",
    ]
    for result in results:
        rows = result["rows"]
        peers = [r for r in rows[1:] if r["system"] != "popularity"]
        best = max(peers, key=lambda r: r["ndcg@10"])
        best_recall = max(r["recall@20"] for r in peers)
        attune = rows[0]
        sizes = f"{result['train_rows']:,} train / {result['test_rows']:,} test rows"
        lines += [
            f"### {result['dataset']} ({sizes})",
            "",
            "| system | NDCG@10 | Recall@20 | HR@10 | Coverage@10 | chosen / best params "
            "| seconds |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['system']} | {r['ndcg@10']:.4f} | {r['recall@20']:.4f} | {r['hr@10']:.4f} "
                f"| {r['coverage@10']:.4f} | `{json.dumps(r['params'])}` | {r['seconds']} |"
            )
        lines += [
            "",
            f"Attune / best peer ({best['system']}): "
            f"NDCG@10 × {attune['ndcg@10'] / best['ndcg@10']:.2f}; "
            f"Recall@20 {attune['recall@20']:.4f} vs best peer {best_recall:.4f}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--write", type=Path, help="Replace the accuracy section of this file")
    parser.add_argument("--json", type=Path, help="Also write raw results here")
    args = parser.parse_args()
    results = [run_dataset(name, args.budget) for name in args.datasets]
    text = markdown(results, args.budget)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.write:
        replace_section(args.write, "## Accuracy", text)


def replace_section(path: Path, heading: str, text: str) -> None:
    """Swap the section starting at ``heading`` (up to the next '## ') for ``text``."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip() + "\n\n" + text + "\n"
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + ("\n" + old[end + 1 :] if end >= 0 else "\n")
    path.write_text(new)


if __name__ == "__main__":
    main()
