#!/usr/bin/env python3
"""Accuracy benchmark: Attune's default pipeline against tuned peers, one split, one run.

    .venv/bin/python benchmarks/accuracy.py [--budget 5m] [--datasets ml-100k ml-latest-small]
                                            [--write BENCHMARKS.md]
    .venv/bin/python benchmarks/accuracy.py --robustness [VARIANT ...] --budget 2m
                                            [--cache peers.json] [--write BENCHMARKS.md]

For each data set, the per-user temporal split of PROTOCOL.md (the reference
``split.py``) gives TRAIN and TEST, and the same rule applied to TRAIN gives TRAIN' and
VALID. Then, in this process:

* Attune is used as a user would: ``attune import events train.csv --type view``
  (``value`` = rating), ``attune import items items.csv``, ``attune train --tune --budget B``,
  ``attune batch-recommend --users test_users.txt --n 20``;
* each peer is tuned on TRAIN'/VALID over a fixed grid, refitted on TRAIN with the best
  setting, and asked for 20 items per test user: implicit ALS, implicit BPR, implicit
  item-kNN (cosine and BM25), EASE (closed form, numpy) and popularity; LightFM (WARP
  and BPR losses) too where it is installed (``make bench-deps``: it ships no wheels);
* every list is scored by the reference ``evaluate.py`` (NDCG@10, Recall@20, ...).

Peers get their library's standard input: the binary user × item matrix of TRAIN; on
variants whose value means something (play counts, quantities), ALS and item-kNN also
try log1p(value) weights, chosen by validation like every other setting.

``--robustness`` runs the variants of ``benchmarks/variants.py`` (no timestamps, no item
metadata, very sparse purchases, play counts) instead and writes a "Robustness" section.
``--draws N`` runs each named variant on N draws of it (another random 15% of rows as
purchases, ...) and writes a "Robustness across draws" section: one draw of a small,
noisy variant says little. ``--cache`` keeps the peers' results between runs (seeded;
BPR trains on one thread, as several threads racing on its factors would give another
model every run), so a rerun after a change to Attune only re-runs Attune.
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
from variants import VARIANTS, Variant, derive  # noqa: E402  (beside this script)

DATASETS = {
    "ml-100k": SHARED / "data" / "ml-100k",
    "ml-latest-small": SHARED / "data" / "ml-latest-small",
}
N = 20
Lists = dict[str, list[str]]


# ---------------------------------------------------------------- data


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """interactions (user_id, item_id, timestamp, value = rating) and items (item_id, title,
    genres)."""
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
    frame = inter[["user_id", "item_id", "timestamp", "rating"]].rename(columns={"rating": "value"})
    return frame, items


# ---------------------------------------------------------------- peers


class Matrix:
    """TRAIN as a user × item CSR matrix, with the id maps: binary, or ``log1p`` of the
    summed values (``weights``)."""

    def __init__(self, train: pd.DataFrame, weights: str = "binary") -> None:
        self.users, user_codes = np.unique(train["user_id"].to_numpy(str), return_inverse=True)
        self.items, item_codes = np.unique(train["item_id"].to_numpy(str), return_inverse=True)
        data = np.ones(len(train), dtype=np.float32)
        if weights == "log1p":
            data = pd.to_numeric(train["value"], errors="coerce").fillna(1.0).to_numpy(np.float32)
        m = sp.csr_matrix(
            (data, (user_codes, item_codes)), shape=(len(self.users), len(self.items))
        )
        m.sum_duplicates()
        m.data = np.log1p(np.maximum(m.data, 0.0)) if weights == "log1p" else np.ones_like(m.data)
        self.matrix = m.astype(np.float32)
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
            num_threads=1,  # several threads race on the factors: another model every run
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


def peer_lightfm(params: dict) -> Callable[[Matrix], Callable]:
    def fit(matrix: Matrix):
        from lightfm import LightFM

        model = LightFM(
            no_components=params["components"],
            loss=params["loss"],
            learning_rate=params["learning_rate"],
            random_state=42,
        )
        # one thread: several race on the embeddings (another model every run)
        model.fit(matrix.matrix.tocoo(), epochs=params["epochs"], num_threads=1)
        user_bias, users = model.get_user_representations()
        item_bias, items = model.get_item_representations()
        return lambda rows: users[rows] @ items.T + item_bias + user_bias[rows, None]

    return fit


def lightfm_installed() -> bool:
    """LightFM ships no wheels and its source needs an old build (``make bench-deps``)."""
    try:
        import lightfm  # noqa: F401
    except ImportError:
        return False
    return True


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
if lightfm_installed():
    PEERS["LightFM"] = (
        peer_lightfm,
        grid(
            loss=["warp", "bpr"],
            components=[32, 64, 128],
            learning_rate=[0.01, 0.05],
            epochs=[10, 30],
        ),
    )


VALUE_AWARE = ("implicit ALS", "item-kNN (implicit)")
"""Peers that also try log1p(value) weights on variants whose value means something."""


def tune_peer(
    name: str,
    inner: pd.DataFrame,
    valid: pd.DataFrame,
    train: pd.DataFrame,
    test_users: list[str],
    valued: bool = False,
) -> tuple[dict, float, Lists, float]:
    """Best grid point on TRAIN'/VALID, refitted on TRAIN: (params, valid NDCG, lists, s)."""
    factory, points = PEERS[name]
    weightings = ["binary", "log1p"] if valued and name in VALUE_AWARE else ["binary"]
    points = [{**p, "weights": w} for w in weightings for p in points]
    inner_matrices = {w: Matrix(inner, w) for w in weightings}
    scorer = Evaluator(inner, valid)
    valid_users = sorted(set(valid["user_id"]))
    best, best_ndcg = points[0], -1.0
    started = time.perf_counter()
    for params in points:
        inner_matrix = inner_matrices[params["weights"]]
        lists = inner_matrix.lists(valid_users, factory(params)(inner_matrix))
        ndcg = scorer.score(lists)["ndcg@10"]
        if ndcg > best_ndcg:
            best, best_ndcg = params, ndcg
    matrix = Matrix(train, best["weights"])
    lists = matrix.lists(test_users, factory(best)(matrix))
    if len(weightings) == 1:
        best = {k: v for k, v in best.items() if k != "weights"}
    return best, best_ndcg, lists, time.perf_counter() - started


# ---------------------------------------------------------------- Attune, as a user runs it


def attune_lists(
    train: pd.DataFrame,
    items: pd.DataFrame | None,
    test_users: list[str],
    budget: str,
    work: Path,
    event_type: str = "view",
) -> tuple[Lists, dict, float]:
    """Attune through its CLI; ``items`` None imports no catalog."""
    cli = str(ROOT / ".venv" / "bin" / "attune")
    env = dict(os.environ, ATTUNE_DATA_DIR=str(work / "attune-data"))
    env.pop("ATTUNE_DATABASE_URL", None)
    events = train[["user_id", "item_id", "timestamp", "value"]]
    events.to_csv(work / "train.csv", index=False)
    (work / "test_users.txt").write_text("\n".join(test_users) + "\n")
    steps = [["import", "events", str(work / "train.csv"), "--type", event_type]]
    if items is not None:
        items.to_csv(work / "items.csv", index=False)
        steps.append(["import", "items", str(work / "items.csv")])
    started = time.perf_counter()
    train_seconds = 0.0
    for args in (
        *steps,
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
        step = time.perf_counter()
        subprocess.run(
            [cli, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if args[0] == "train":  # the budget covers this step: show that it holds
            train_seconds = round(time.perf_counter() - step, 1)
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
    version = stats["model_versions"][0] if stats["model_versions"] else {"algorithm": "?"}
    info = {"chosen": version["algorithm"]}
    if version.get("components"):
        info["blend"] = version["components"]
    if version.get("validation_ndcg@10") is not None:
        info["validation_ndcg@10"] = version["validation_ndcg@10"]
    return lists, {**info, "train_seconds": train_seconds}, seconds


# ---------------------------------------------------------------- report


def run_dataset(
    name: str,
    budget: str,
    variant: Variant | None = None,
    cache: Path | None = None,
    seed: int = 0,
) -> dict:
    """Attune and every peer on one data set (or robustness variant of one, drawn with
    ``seed``)."""
    frame, items = load(variant.base if variant else name)
    if variant is not None:
        frame = derive(variant, frame, seed)
        name = variant.name if seed == 0 else f"{variant.name}@{seed}"
    train, test = temporal_user_split(frame)
    inner, valid = temporal_user_split(train)
    test_users = sorted(set(test["user_id"]))
    scorer = Evaluator(train, test)
    rows = []
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        lists, info, seconds = attune_lists(
            train,
            items if variant is None or variant.with_items else None,
            test_users,
            budget,
            Path(tmp),
            variant.event_type if variant else "view",
        )
    attune_per_user: dict = {}
    metrics = scorer.score(lists, per_user=attune_per_user)
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
    cached = json.loads(cache.read_text()) if cache and cache.exists() else {}
    for peer in PEERS:
        key = f"{name}|{peer}|{len(train)}|{len(test)}"
        if key not in cached:
            params, valid_ndcg, lists, seconds = tune_peer(
                peer, inner, valid, train, test_users, variant is not None and variant.valued
            )
            cached[key] = {
                "system": peer,
                "params": params,
                "valid_ndcg@10": round(valid_ndcg, 4),
                "seconds": round(seconds, 1),
                **scorer.score(lists),
            }
            if cache:
                cache.write_text(json.dumps(cached, indent=2, default=str))
        rows.append(cached[key])
        print(f"[{name}] {peer}: NDCG@10 {rows[-1]['ndcg@10']:.4f} {rows[-1]['params']}")
    best = max(rows[1:], key=lambda r: r["ndcg@10"])
    gap = paired_gap(attune_per_user, best, train, test_users, scorer)
    return {
        "dataset": name,
        "train_rows": len(train),
        "test_rows": len(test),
        "rows": rows,
        "gap_vs_best_peer": gap,
    }


def paired_gap(
    attune_per_user: dict, best: dict, train: pd.DataFrame, test_users: list[str], scorer
) -> dict:
    """Attune's NDCG@10 minus the best peer's, per test user: mean and 95% interval.

    The peer is refitted on TRAIN with its chosen parameters (deterministic: the same
    lists its row was scored on), so the difference is paired person by person.
    """
    factory, _ = PEERS[best["system"]]
    params = best["params"]
    matrix = Matrix(train, params.get("weights", "binary"))
    peer_per_user: dict = {}
    scorer.score(matrix.lists(test_users, factory(params)(matrix)), per_user=peer_per_user)
    ours = dict(zip(attune_per_user["user_id"], attune_per_user["ndcg@10"], strict=True))
    theirs = dict(zip(peer_per_user["user_id"], peer_per_user["ndcg@10"], strict=True))
    gain = np.array([ours[u] - theirs[u] for u in ours])
    error = gain.std(ddof=1) / np.sqrt(len(gain))
    return {"mean": float(gain.mean()), "ci95": float(1.96 * error), "peer": best["system"]}


def markdown(results: list[dict], budget: str) -> str:
    lines = [
        "## Accuracy (PROTOCOL.md, split temporal-user-20)",
        "",
        f"Command: `.venv/bin/python benchmarks/accuracy.py --budget {budget}`; {_machine()}. "
        "Peers tuned on TRAIN'/VALID over a fixed grid, refitted on TRAIN; every list scored "
        "by the reference `evaluate.py`.",
        "",
    ]
    lines += _tables(results)
    return "\n".join(lines)


def _machine() -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()} {os.cpu_count()} cores "
        f"({platform.platform()})"
    )


def robustness_markdown(results: list[dict], budget: str) -> str:
    """The "Robustness" section: one summary table, then each variant's full table."""
    names = " ".join(r["dataset"] for r in results)
    lines = [
        "## Robustness (other kinds of data, PROTOCOL.md split temporal-user-20)",
        "",
        f"Command: `.venv/bin/python benchmarks/accuracy.py --robustness {names} "
        f"--budget {budget}`; {_machine()}. Variants of the shared data "
        "(`benchmarks/variants.py`, seed 0); peers tuned as in the accuracy section, ALS and "
        "item-kNN also choosing binary or log1p(value) weights where the value means "
        "something. Target: never below the best peer.",
        "",
        "| variant | what it is | Attune NDCG@10 | best peer | peer NDCG@10 | × | "
        "Attune − peer (95% CI) | Attune Recall@20 | best peer Recall@20 |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        rows = result["rows"]
        attune, peers = rows[0], rows[1:]
        best = max(peers, key=lambda r: r["ndcg@10"])
        gap = result["gap_vs_best_peer"]
        lines.append(
            f"| {result['dataset']} | {VARIANTS[result['dataset']].description} "
            f"| {attune['ndcg@10']:.4f} | {best['system']} | {best['ndcg@10']:.4f} "
            f"| {attune['ndcg@10'] / best['ndcg@10']:.2f} "
            f"| {gap['mean']:+.4f} ± {gap['ci95']:.4f} | {attune['recall@20']:.4f} "
            f"| {max(r['recall@20'] for r in peers):.4f} |"
        )
    lines.append("")
    lines += [line.replace("### ", "#### ", 1) for line in _tables(results)]
    return "\n".join(lines)


def draws_markdown(results: list[dict], budget: str, draws: int) -> str:
    """The "Robustness across draws" section: each draw of a random variant, then every
    system's mean over the draws."""
    names = " ".join(dict.fromkeys(r["dataset"].split("@")[0] for r in results))
    lines = [
        "## Robustness across draws",
        "",
        f"Command: `.venv/bin/python benchmarks/accuracy.py --robustness {names} --draws "
        f"{draws} --budget {budget}`; {_machine()}. Each draw is another instance of the "
        "variant (seeds 0 to "
        f"{draws - 1} of `benchmarks/variants.py`; draw 0 is the one above), with Attune and "
        "every peer tuned and scored on it as above. NDCG@10:",
        "",
    ]
    by_variant: dict[str, list[dict]] = {}
    for result in results:
        by_variant.setdefault(result["dataset"].split("@")[0], []).append(result)
    for variant, runs in by_variant.items():
        systems = [r["system"] for r in runs[0]["rows"]]
        header = ["draw", "Attune (chosen)", *systems[1:], "best peer", "×", "Attune − best"]
        lines += [f"### {variant}", "", "| " + " | ".join(header) + " |"]
        lines.append("|---|" + "---:|" * (len(header) - 4) + "---|---:|---:|")
        for draw, run in enumerate(runs):
            scores = {r["system"]: r["ndcg@10"] for r in run["rows"]}
            attune = run["rows"][0]
            best = max(run["rows"][1:], key=lambda r: r["ndcg@10"])
            gap = run["gap_vs_best_peer"]
            cells = [
                str(draw),
                f"{attune['ndcg@10']:.4f} ({attune['params'].get('chosen')})",
                *(f"{scores[s]:.4f}" for s in systems[1:]),
                best["system"],
                f"{attune['ndcg@10'] / best['ndcg@10']:.2f}",
                f"{gap['mean']:+.4f} ± {gap['ci95']:.4f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        means = {
            s: np.mean([run["rows"][i]["ndcg@10"] for run in runs]) for i, s in enumerate(systems)
        }
        oracle = np.mean([max(r["ndcg@10"] for r in run["rows"][1:]) for run in runs])
        cells = ["mean", f"{means[systems[0]]:.4f}", *(f"{means[s]:.4f}" for s in systems[1:])]
        cells += [f"{oracle:.4f} (best of each draw)", f"{means[systems[0]] / oracle:.2f}", ""]
        lines += ["| " + " | ".join(cells) + " |", ""]
        peer_means = {s: means[s] for s in systems[1:]}
        top = max(peer_means, key=peer_means.__getitem__)
        lines += [
            f"Over {len(runs)} draws: Attune {means[systems[0]]:.4f}; the best single peer "
            f"{top} {peer_means[top]:.4f} (× {means[systems[0]] / peer_means[top]:.2f}); the "
            f"best peer of each draw, named after seeing TEST, {oracle:.4f}.",
            "",
        ]
    return "\n".join(lines)


def _tables(results: list[dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--robustness",
        nargs="*",
        choices=list(VARIANTS),
        help="Run these robustness variants (all when none named) instead of --datasets",
    )
    parser.add_argument(
        "--draws",
        type=int,
        help="With --robustness: run each variant on this many draws (seeds 0 to N - 1) "
        "and write a 'Robustness across draws' section",
    )
    parser.add_argument("--cache", type=Path, help="Keep and reuse peer results in this JSON")
    parser.add_argument("--write", type=Path, help="Replace the section of this file")
    parser.add_argument("--json", type=Path, help="Also write raw results here")
    args = parser.parse_args()
    if args.robustness is not None and args.draws:
        chosen = [VARIANTS[name] for name in (args.robustness or VARIANTS)]
        results = [
            run_dataset(v.name, args.budget, v, args.cache, seed)
            for v in chosen
            for seed in range(args.draws)
        ]
        text = draws_markdown(results, args.budget, args.draws)
        heading = "## Robustness across draws"
    elif args.robustness is not None:
        chosen = [VARIANTS[name] for name in (args.robustness or VARIANTS)]
        results = [run_dataset(v.name, args.budget, v, args.cache) for v in chosen]
        text, heading = robustness_markdown(results, args.budget), "## Robustness"
    else:
        results = [run_dataset(name, args.budget, cache=args.cache) for name in args.datasets]
        text, heading = markdown(results, args.budget), "## Accuracy"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.write:
        replace_section(args.write, heading, text)


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
