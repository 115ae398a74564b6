#!/usr/bin/env python3
"""What the catalog's descriptions add: similar items for untried items, and embeddings.

    .venv/bin/python benchmarks/cold_items.py [--write BENCHMARKS.md]

On ML-100K and ml-latest-small under PROTOCOL.md's split (TRAIN only; TEST is looked at
for one count, below):

1. **Similar items for items nobody had in TRAIN** (catalog items that only TEST or no
   one has). Item-kNN, the collaborative item-to-item model, has no neighbours for them,
   so before ``item_to_item`` their "similar items" were the popular fill; now content
   completes item-kNN. Reported: how many such items get any similar item from each,
   the share of their top 10 that shares a genre with them (against the top 10 popular
   items), and, for the people who went on to have such an item in TEST, how often it
   stands among the top 20 similar items of one of their 10 newest TRAIN items.
2. **Sentence embeddings in the content model**: the content model alone scored on the
   tuning split (TRAIN'/VALID, NDCG@10) at embedding weights 0 (TF-IDF only), 0.5, 1, 2.
3. **Items added to the catalog after training**: the same untried items, this time left
   out of the catalog the models are fitted on (as if added to it afterwards), so they
   are outside the version's item space; each is then matched by its catalog entry
   (``similar_to_records``). Reported: the share of their top 10 sharing a genre with
   them, and the time to match one entry the first time (nothing remembered), with
   TF-IDF alone and with embeddings (weight 1); and, as the exploration share of the
   tried items' pages (``look_alikes``), on how many pages one of them would take a
   slot, whether it shares a genre with the page's item, and how many reach a page.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from attune.evaluation.splits import temporal_user_split
from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.ingest.movielens import read_movielens
from attune.models.item_to_item import ItemToItemRecommender
from attune.models.registry import create_model
from attune.training.validation_set import ValidationSet

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SETS = ("ml-100k", "ml-latest-small")
WEIGHTS = (0.0, 0.5, 1.0, 2.0)
K = 10


def catalog(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, items with list-valued categories and tags) of a shared data set."""
    data = read_movielens(DATA / name)
    items = data.items.copy()
    for column in ("categories", "tags"):
        if column in items:
            items[column] = items[column].map(
                lambda v: [x for x in v.split("|") if x] if isinstance(v, str) else []
            )
    kept = [c for c in ("item_id", "title", "categories", "tags") if c in items]
    return data.events, items[kept]


def genre_share(
    dataset: InteractionDataset, genres: dict[str, set[str]], anchor: int, listed: np.ndarray
) -> float:
    mine = genres.get(str(dataset.item_ids[anchor]), set())
    got = [i for i in listed.tolist() if i >= 0]
    if not mine or not got:
        return float("nan")
    return float(np.mean([bool(mine & genres.get(str(dataset.item_ids[i]), set())) for i in got]))


def untried_items(name: str) -> dict[str, float]:
    events, items = catalog(name)
    train, test = temporal_user_split(events)
    dataset = build_dataset(train, WeightPolicy(), items)
    knn = create_model("item_knn").fit(dataset)
    model = ItemToItemRecommender.of(knn, create_model("content").fit(dataset))
    popular = create_model("popularity").fit(dataset)
    untried = np.flatnonzero(np.asarray((dataset.matrix > 0).sum(axis=0)).ravel() == 0)
    genres = {str(r.item_id): set(r.categories) for r in items.itertuples()}
    knn_index, _ = knn.similar_items(untried, K)
    index, _ = model.similar_items(untried, K)
    nobody = np.zeros((1, dataset.n_items), dtype=np.float32)
    top = np.argsort(-popular.score(nobody, np.array([-1]))[0])[:K]
    # the people who went on to an untried item: is it beside one of their newest items?
    position = dataset.item_position
    wanted = set(dataset.item_ids[untried].astype(str).tolist())
    later = test[test["item_id"].astype(str).isin(wanted)]
    newest = train.sort_values("timestamp", kind="stable").groupby("user_id").tail(10)
    pairs = beside = 0
    for user, rows in later.groupby("user_id"):
        anchors = [position[i] for i in newest.loc[newest["user_id"] == user, "item_id"]]
        if not anchors:
            continue
        near, _ = model.similar_items(np.array(anchors), 20)
        near_set = set(near.ravel().tolist())
        for item in rows["item_id"].astype(str):
            pairs += 1
            beside += position[item] in near_set
    return {
        "untried": len(untried),
        "knn_any": int((knn_index >= 0).any(axis=1).sum()),
        "any": int((index >= 0).any(axis=1).sum()),
        "genre": float(
            np.nanmean([genre_share(dataset, genres, a, index[r]) for r, a in enumerate(untried)])
        ),
        "popular_genre": float(np.nanmean([genre_share(dataset, genres, a, top) for a in untried])),
        "pairs": pairs,
        "beside": beside / pairs if pairs else float("nan"),
    }


def added_later(name: str) -> dict[str, float]:
    events, items = catalog(name)
    train, _ = temporal_user_split(events)
    had = set(train["item_id"].astype(str))
    added = items[~items["item_id"].astype(str).isin(had)]
    known = items[items["item_id"].astype(str).isin(had)]
    dataset = build_dataset(train, WeightPolicy(), known)
    genres = {str(r.item_id): set(r.categories) for r in items.itertuples()}
    knn = create_model("item_knn").fit(dataset)
    out: dict[str, float] = {"added": len(added), "space": dataset.n_items}
    for label, params in (("tfidf", {}), ("embedded", {"embedding_weight": 1.0})):
        model = ItemToItemRecommender.of(knn, create_model("content", params).fit(dataset))
        shares, seconds = [], []
        for record in added.to_dict("records"):
            started = time.perf_counter()
            index, _ = model.similar_to_records([record], K)
            seconds.append(time.perf_counter() - started)
            mine = genres.get(str(record["item_id"]), set())
            got = [str(dataset.item_ids[i]) for i in index[0].tolist() if i >= 0]
            if mine and got:
                shares.append(np.mean([bool(mine & genres.get(i, set())) for i in got]))
        out[f"{label}_genre"] = float(np.mean(shares))
        out[f"{label}_found"] = len(shares)
        out[f"{label}_ms"] = 1000 * float(np.median(seconds))
        out.update({f"{label}_{k}": v for k, v in pages(model, dataset, added, genres).items()})
    return out


def pages(
    model: ItemToItemRecommender,
    dataset: InteractionDataset,
    added: pd.DataFrame,
    genres: dict[str, set[str]],
) -> dict[str, float]:
    """The added items as exploration candidates on the pages of tried items: on how many
    pages one of them is as close to the page's item as its own 10th closest (so would
    take a reserved slot), whether the closest of them shares a genre with it, and how
    many added items reach some page."""
    records = added.to_dict("records")
    ids = [str(r["item_id"]) for r in records]
    tried = np.flatnonzero(np.asarray((dataset.matrix > 0).sum(axis=0)).ravel() > 0)
    catalog = {str(r["item_id"]): r for r in genres_records(dataset)}
    offered = same_genre = 0
    reached: set[str] = set()
    for anchor in tried.tolist():
        anchor_id = str(dataset.item_ids[anchor])
        alike = model.look_alikes(catalog.get(anchor_id, {}), records, K, anchor)
        if not alike:
            continue
        offered += 1
        reached.update(ids[k] for k, _ in alike)
        top = ids[alike[0][0]]
        same_genre += bool(genres.get(anchor_id, set()) & genres.get(top, set()))
    return {
        "pages": len(tried),
        "offered": offered,
        "offered_genre": same_genre / offered if offered else float("nan"),
        "reached": len(reached),
    }


def genres_records(dataset: InteractionDataset) -> list[dict]:
    """The catalog entries the dataset was built with, as records."""
    features = dataset.item_features
    frame = features.assign(item_id=dataset.item_ids.astype(str))
    return frame.to_dict("records")


def embedding_weights(name: str) -> dict[float, float]:
    events, items = catalog(name)
    validation = ValidationSet(events, WeightPolicy(), items=items)
    return {
        w: validation.ndcg(validation.scores("content", {"embedding_weight": w})) for w in WEIGHTS
    }


def report() -> str:
    started = time.perf_counter()
    cold = {name: untried_items(name) for name in SETS}
    embedded = {name: embedding_weights(name) for name in SETS}
    later = {name: added_later(name) for name in SETS}
    stamp = datetime.now(UTC).date().isoformat()
    lines = [
        "## Catalog descriptions (similar items for untried items, sentence embeddings)",
        "",
        f"Command: `.venv/bin/python benchmarks/cold_items.py`; {stamp}, {platform.machine()} "
        f"({platform.platform()}), {time.perf_counter() - started:.0f} s. PROTOCOL.md's split; "
        "see the script's docstring.",
        "",
        "| data | items nobody had in TRAIN | with similar items: item-kNN | with similar items: "
        "item_to_item | top 10 sharing a genre: item_to_item | top 10 popular sharing a genre | "
        "(person, untried TEST item) pairs | item among top-20 similar of their 10 newest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in cold.items():
        lines.append(
            f"| {name} | {r['untried']:,} | {r['knn_any']:,} | {r['any']:,} | {r['genre']:.3f} | "
            f"{r['popular_genre']:.3f} | {r['pairs']:,} | {r['beside']:.3f} |"
        )
    lines += [
        "",
        "Content model alone, VALID NDCG@10 by `embedding_weight` (0: TF-IDF only):",
        "",
        "| data | " + " | ".join(f"{w:g}" for w in WEIGHTS) + " |",
        "|---|" + "---:|" * len(WEIGHTS),
    ]
    for name, scores in embedded.items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[w]:.4f}" for w in WEIGHTS) + " |")
    lines += [
        "",
        "The same untried items added to the catalog after training (outside the item space; "
        "before, their similar items were the popular fill):",
        "",
        "| data | items in the space | items added | top 10 sharing a genre: TF-IDF | "
        "with embeddings | median ms to match one: TF-IDF | with embeddings |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in later.items():
        lines.append(
            f"| {name} | {r['space']:,} | {r['added']:,} | {r['tfidf_genre']:.3f} | "
            f"{r['embedded_genre']:.3f} | {r['tfidf_ms']:.2f} | {r['embedded_ms']:.2f} |"
        )
    lines += [
        "",
        "The same added items as the exploration share of tried items' pages (similar "
        "lists of 10): pages where one of them is at least as close to the page's item as "
        "its own 10th closest, the closest of those sharing a genre with it, and added "
        "items that reach some page:",
        "",
        "| data | content | tried items' pages | pages offering an added item | sharing a genre "
        "| added items reaching a page |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, r in later.items():
        for label, what in (("tfidf", "TF-IDF"), ("embedded", "with embeddings")):
            lines.append(
                f"| {name} | {what} | {r[f'{label}_pages']:,} | {r[f'{label}_offered']:,} | "
                f"{r[f'{label}_offered_genre']:.3f} | {r[f'{label}_reached']:,} of "
                f"{r['added']:,} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Replace the section in this file")
    args = parser.parse_args()
    text = report()
    print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Catalog descriptions", text)


if __name__ == "__main__":
    main()
