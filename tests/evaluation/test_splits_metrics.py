from __future__ import annotations

import math

import pandas as pd
import pytest

from attune.evaluation.metrics import ranking_metrics
from attune.evaluation.splits import leave_last_one_out, temporal_user_split


def _frame():
    rows = [("u1", f"i{k}", 100 + k) for k in range(10)] + [
        ("u2", "x", 5),
        ("u3", "y", 1),
        ("u3", "z", 2),
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_temporal_user_split_holds_out_each_users_newest_fifth():
    train, test = temporal_user_split(_frame())
    assert sorted(test[test.user_id == "u1"].item_id) == ["i8", "i9"]
    # one row: it goes to test (at least one per user); two rows: round(0.4) -> 1
    assert list(test[test.user_id == "u2"].item_id) == ["x"]
    assert list(test[test.user_id == "u3"].item_id) == ["z"]
    assert len(train) + len(test) == len(_frame())


def test_ties_in_time_are_broken_by_item_id():
    frame = pd.DataFrame({"user_id": ["u"] * 5, "item_id": list("edcba"), "timestamp": [1] * 5})
    _, test = temporal_user_split(frame)
    assert list(test.item_id) == ["e"]


def test_leave_last_one_out():
    train, test = leave_last_one_out(_frame())
    assert set(zip(test.user_id, test.item_id, strict=True)) == {("u1", "i9"), ("u3", "z")}
    assert "u2" in set(train.user_id)


def test_metrics_known_values():
    relevant = {"a": {"1", "2"}, "b": {"9"}}
    recs = {"a": ["1", "3", "2"], "b": ["5"]}
    m = ranking_metrics(recs, relevant, k=3)
    ideal = 1 + 1 / math.log2(3)
    dcg = 1 + 1 / 2.0
    assert m["ndcg@3"] == pytest.approx((dcg / ideal + 0) / 2)
    assert m["recall@3"] == pytest.approx(0.5)
    assert m["hit_rate@3"] == pytest.approx(0.5)
    assert m["mrr@3"] == pytest.approx(0.5)
    assert m["map@3"] == pytest.approx(((1 + 2 / 3) / 2) / 2)


def test_train_items_and_repeats_are_misses():
    relevant = {"a": {"1"}}
    assert ranking_metrics({"a": ["1"]}, relevant, 5, {"a": {"1"}})["hit_rate@5"] == 0
    assert ranking_metrics({"a": ["2", "2", "1"]}, relevant, 2)["hit_rate@2"] == 0
    assert ranking_metrics({}, relevant, 5)["ndcg@5"] == 0


def test_beyond_accuracy_known_values():
    from attune.evaluation.report import beyond_accuracy

    train = pd.DataFrame({"user_id": ["u1", "u2", "u2", "u3"], "item_id": ["a", "a", "b", "c"]})
    recs = {"u1": ["a", "b"], "u2": ["c", "d"]}
    cats = {"a": ["x"], "b": ["x"], "c": ["x", "y"], "d": []}
    m = beyond_accuracy(recs, train, 2, catalog=4, item_categories=cats)
    assert m["coverage@2"] == 1.0
    # a: 2 of 3 users, b and c: 1 of 3, d: unseen (counts as maximally novel)
    expected = (-math.log2(2 / 3) - math.log2(1 / 3) - math.log2(1 / 3) + math.log2(3)) / 4
    assert m["novelty@2"] == pytest.approx(expected)
    # list 1: a,b share x -> distance 0; list 2: c={x,y}, d={} -> distance 1
    assert m["diversity@2"] == pytest.approx(0.5)


def test_report_breaks_results_down_by_segment():
    from attune.evaluation.report import evaluation_report

    train = pd.DataFrame(
        {"user_id": ["new"] + ["heavy"] * 40, "item_id": ["z"] + [f"h{k}" for k in range(40)]}
    )
    test = pd.DataFrame({"user_id": ["new", "heavy"], "item_id": ["t1", "t2"]})
    report = evaluation_report({"new": ["t1"], "heavy": ["x"]}, train, test, ks=(10,))
    assert report["segments"]["new"]["ndcg@10"] == 1.0
    assert report["segments"]["heavy"]["ndcg@10"] == 0.0
    assert report["overall"]["ndcg@10"] == 0.5


def test_keep_order_returns_the_same_split_in_arrival_order():
    """Tuning validates on TRAIN' in arrival order: regression for data whose events all
    share one timestamp, where TRAIN' sorted by item id let models read VALID (the
    highest ids) off the order of each history."""
    frame = pd.DataFrame({"user_id": "u", "item_id": ["c", "e", "a", "d", "b"], "timestamp": 7.0})
    sorted_train, sorted_test = temporal_user_split(frame)
    train, test = temporal_user_split(frame, keep_order=True)
    assert list(test.item_id) == list(sorted_test.item_id) == ["e"]
    assert list(train.item_id) == ["c", "a", "d", "b"], "as they arrived"
    assert list(sorted_train.item_id) == ["a", "b", "c", "d"]


def test_coverage_counts_catalog_items_of_scored_users_and_never_passes_one():
    """The catalog is every item seen in train plus those known from metadata; lists of
    users with nothing to find, and items outside the catalog, do not count."""
    from attune.evaluation.report import evaluation_report

    train = pd.DataFrame({"user_id": list("uuvvw"), "item_id": list("abaca")})
    test = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["c", "b"]})
    lists = {"u": ["c", "zzz1"], "v": ["b", "zzz2"], "w": ["yyy"]}
    report = evaluation_report(lists, train, test, ks=(2,))
    assert report["overall"]["coverage@2"] == pytest.approx(2 / 3)
    with_metadata = evaluation_report(lists, train, test, ks=(2,), catalog_items=["d", "e", "f"])
    assert with_metadata["catalog_size"] == 6
    assert with_metadata["overall"]["coverage@2"] == pytest.approx(2 / 6)


def test_segments_count_training_interactions_not_distinct_items():
    from attune.evaluation.report import evaluation_report

    train = pd.DataFrame({"user_id": ["u"] * 10, "item_id": ["a", "b"] * 5})
    test = pd.DataFrame({"user_id": ["u"], "item_id": ["c"]})
    assert list(evaluation_report({"u": ["c"]}, train, test, ks=(10,))["segments"]) == ["light"]


def test_mrr_is_reported_per_cutoff():
    from attune.evaluation.report import evaluation_report

    train = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    test = pd.DataFrame({"user_id": ["u"], "item_id": ["c"]})
    overall = evaluation_report({"u": ["x1", "x2", "c"]}, train, test, ks=(1, 3))["overall"]
    assert overall["mrr@1"] == 0 and overall["mrr@3"] == pytest.approx(1 / 3)


def test_integer_ids_score_as_their_text():
    """Lists name people and items as text; an int-keyed test frame scored zero."""
    from attune.evaluation.report import evaluation_report

    train = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11]})
    test = pd.DataFrame({"user_id": [1], "item_id": [12]})
    report = evaluation_report({"1": ["12"]}, train, test, ks=(1,))
    assert report["overall"]["ndcg@1"] == 1.0


def test_items_had_in_train_are_not_relevant_in_any_scorer():
    """PROTOCOL.md: relevant = held-out items the person did not have in train; tuning's
    scorer counted them in the ideal DCG and in recall's denominator."""
    metrics = ranking_metrics({"u": ["t", "a"]}, {"u": {"a", "t"}}, 5, {"u": {"t"}})
    assert metrics["recall@5"] == 1.0
    assert metrics["ndcg@5"] == pytest.approx(1 / math.log2(3))  # one relevant, at rank 2


def test_leave_last_one_out_breaks_ties_by_item_id_as_text():
    frame = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [10, 9, 2], "timestamp": [7, 7, 7]})
    _, test = leave_last_one_out(frame)
    assert list(test.item_id) == [9]  # "9" > "2" > "10" as text
