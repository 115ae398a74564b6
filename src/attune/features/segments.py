"""Segments of events by a person's traits and an event's context, and scores per segment.

A *segment key* names where a value comes from: ``traits.<name>`` (a user trait, e.g.
``traits.region``) or ``context.<name>`` (a field of the event's context, e.g.
``context.device``). Given keys ``k1..kn``, every non-empty combination of them defines
segments: ``{traits.region: EU}``, ``{context.device: mobile}``,
``{traits.region: EU, context.device: mobile}``, ... A segment is kept when at least
``min_people`` distinct people have events in it, so a tiny segment falls back to a
coarser one (or to the global scores).

Values are compared as normalised labels (:func:`segment_label`): text as given, numbers
without a trailing ``.0``, booleans as ``true``/``false``; a missing or empty value puts
the event in no segment of that key.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

SOURCES = ("traits", "context")
MAX_KEYS = 4
"""At most this many keys (15 combinations) per model."""


def check_segment_keys(keys: Iterable[str]) -> list[str]:
    """The keys, validated: ``traits.<name>`` or ``context.<name>``, distinct, at most 4.

    Raises:
        ValueError: naming the offending key.
    """
    checked: list[str] = []
    for key in keys:
        source, dot, name = str(key).partition(".")
        if source not in SOURCES or not dot or not name.strip():
            raise ValueError(
                f"segment key {key!r} must be 'traits.<name>' (a user trait) or "
                "'context.<name>' (an event context field)"
            )
        if key in checked:
            raise ValueError(f"segment key {key!r} is listed twice")
        checked.append(key)
    if len(checked) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} segment keys, got {len(checked)}")
    return checked


def segment_label(value: Any) -> str | None:
    """A value as the label segments compare (None: no value)."""
    if value is None or isinstance(value, dict | list | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not np.isfinite(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def lookup_path(mapping: Any, path: str) -> Any:
    """``mapping[a][b]`` for ``path`` "a.b" (None when any step is missing)."""
    current = mapping
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def event_values(
    key: str,
    user_index: np.ndarray,
    user_ids: np.ndarray,
    event_context: np.ndarray | None,
    user_traits: Mapping[str, Any] | None,
) -> np.ndarray:
    """Per event, the label of ``key`` (object array of str or None).

    Args:
        key: a checked segment key.
        user_index: (n_events,) internal user index of each event.
        user_ids: external user ids by internal index.
        event_context: (n_events,) each event's context dict (or None); None: unknown.
        user_traits: external user id → traits dict; None: unknown.
    """
    source, _, name = key.partition(".")
    out = np.full(len(user_index), None, dtype=object)
    if source == "context" and event_context is not None:
        out[:] = [segment_label(lookup_path(c, name)) for c in event_context]
    elif source == "traits" and user_traits is not None:
        per_user = np.array(
            [segment_label(lookup_path(user_traits.get(u), name)) for u in user_ids.tolist()]
            + [None],
            dtype=object,
        )
        out[:] = per_user[np.asarray(user_index, dtype=np.int64)]
    return out


def key_combinations(n_keys: int) -> list[tuple[int, ...]]:
    """Every non-empty combination of key positions, most specific first (then key order)."""
    return [c for size in range(n_keys, 0, -1) for c in itertools.combinations(range(n_keys), size)]


@dataclass
class SegmentScores:
    """Learnt segments and their per-item statistics.

    Attributes:
        keys: the segment keys, in the model's order.
        combos: (n_segments,) bitmask of the keys each segment is defined on.
        labels: (n_segments,) JSON list of the segment's values, in key order.
        people: (n_segments,) distinct people with events in the segment.
        matrices: statistic name → (n_segments, n_items) float32 CSR.
    """

    keys: list[str]
    combos: np.ndarray
    labels: np.ndarray
    people: np.ndarray
    matrices: dict[str, sp.csr_matrix] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def _index(self) -> dict[tuple[int, str], int]:
        return {
            (int(c), str(label)): row
            for row, (c, label) in enumerate(zip(self.combos, self.labels, strict=True))
        }

    def lookup(self, values: Mapping[str, Any]) -> int | None:
        """The row of the most specific segment ``values`` (segment key → value) falls in."""
        labels = {k: segment_label(values.get(k)) for k in self.keys}
        for combo in key_combinations(len(self.keys)):
            parts = [labels[self.keys[k]] for k in combo]
            if any(p is None for p in parts):
                continue
            row = self._index.get((_mask(combo), json.dumps(parts)))
            if row is not None:
                return row
        return None

    def row(self, name: str, row: int) -> np.ndarray:
        """Dense (n_items,) float64 statistic ``name`` of segment ``row``."""
        return np.asarray(self.matrices[name][row].toarray(), dtype=np.float64).ravel()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an ``.npz`` (strings as unicode, no pickle)."""
        arrays: dict[str, np.ndarray] = {
            "segment_keys": np.asarray(self.keys, dtype=str),
            "segment_combos": self.combos.astype(np.int64),
            "segment_labels": self.labels.astype(str),
            "segment_people": self.people.astype(np.int64),
        }
        for name, matrix in self.matrices.items():
            arrays[f"segment_{name}_data"] = matrix.data
            arrays[f"segment_{name}_indices"] = matrix.indices
            arrays[f"segment_{name}_indptr"] = matrix.indptr
            arrays[f"segment_{name}_shape"] = np.asarray(matrix.shape, dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SegmentScores | None:
        """The inverse of :meth:`to_arrays`; None when the arrays hold no segments."""
        if "segment_keys" not in arrays:
            return None
        names = [k[len("segment_") : -len("_shape")] for k in arrays if k.endswith("_shape")]
        matrices = {
            name: sp.csr_matrix(
                (
                    arrays[f"segment_{name}_data"],
                    arrays[f"segment_{name}_indices"],
                    arrays[f"segment_{name}_indptr"],
                ),
                shape=tuple(int(v) for v in arrays[f"segment_{name}_shape"]),
            )
            for name in names
        }
        return cls(
            keys=[str(k) for k in arrays["segment_keys"]],
            combos=np.asarray(arrays["segment_combos"], dtype=np.int64),
            labels=np.asarray(arrays["segment_labels"], dtype=str),
            people=np.asarray(arrays["segment_people"], dtype=np.int64),
            matrices=matrices,
        )


def _mask(combo: Sequence[int]) -> int:
    return sum(1 << k for k in combo)


def learn_segments(
    keys: Sequence[str],
    values: Mapping[str, np.ndarray],
    user_index: np.ndarray,
    item_index: np.ndarray,
    n_items: int,
    statistics: Mapping[str, np.ndarray],
    min_people: int,
    per_person: str = "max",
) -> SegmentScores:
    """Per segment and item, each statistic summed over people.

    Args:
        keys: segment keys (their order decides ties in specificity).
        values: key → per-event labels (:func:`event_values`).
        user_index, item_index: (n_events,) internal indices.
        n_items: columns of every matrix.
        statistics: name → (n_events,) per-event value, e.g. a decayed weight.
        min_people: the fewest distinct people a kept segment has.
        per_person: how one person's events with one item combine before summing over
            people: ``max`` (each person counts once, at their largest value) or ``sum``.
    """
    codes = {}
    for key in keys:
        code, uniques = pd.factorize(pd.Series(values[key], dtype=object), use_na_sentinel=True)
        codes[key] = (code.astype(np.int64), np.asarray(uniques, dtype=object))
    combos, labels, people, parts = [], [], [], {name: [] for name in statistics}
    users = np.asarray(user_index, dtype=np.int64)
    items = np.asarray(item_index, dtype=np.int64)
    for combo in key_combinations(len(keys)):
        stacked = np.stack([codes[keys[k]][0] for k in combo])
        inside = np.flatnonzero((stacked >= 0).all(axis=0))
        if not len(inside):
            continue
        unique, segment = np.unique(stacked[:, inside], axis=1, return_inverse=True)
        segment = segment.ravel()
        base = int(users.max()) + 1
        pairs = np.unique(segment * base + users[inside])
        counts = np.bincount(pairs // base, minlength=unique.shape[1])
        kept = np.flatnonzero(counts >= min_people)
        if not len(kept):
            continue
        row_of = np.full(unique.shape[1], -1, dtype=np.int64)
        row_of[kept] = np.arange(len(kept))
        rows = row_of[segment]
        chosen = rows >= 0
        frame = pd.DataFrame(
            {
                "row": rows[chosen],
                "user": users[inside][chosen],
                "item": items[inside][chosen],
                **{name: np.asarray(v)[inside][chosen] for name, v in statistics.items()},
            }
        )
        per_pair = frame.groupby(["row", "user", "item"], sort=False).agg(per_person)
        totals = per_pair.groupby(level=["row", "item"], sort=False).sum()
        row_ids = totals.index.get_level_values("row").to_numpy()
        item_ids = totals.index.get_level_values("item").to_numpy()
        for name in statistics:
            parts[name].append(
                sp.csr_matrix(
                    (totals[name].to_numpy(np.float32), (row_ids, item_ids)),
                    shape=(len(kept), n_items),
                )
            )
        for s in kept:
            combos.append(_mask(combo))
            labels.append(
                json.dumps([str(codes[keys[k]][1][unique[j, s]]) for j, k in enumerate(combo)])
            )
        people.extend(counts[kept].tolist())
    matrices = {
        name: sp.csr_matrix(sp.vstack(blocks), dtype=np.float32)
        if blocks
        else sp.csr_matrix((0, n_items), dtype=np.float32)
        for name, blocks in parts.items()
    }
    return SegmentScores(
        keys=list(keys),
        combos=np.asarray(combos, dtype=np.int64),
        labels=np.asarray(labels, dtype=str),
        people=np.asarray(people, dtype=np.int64),
        matrices=matrices,
    )


def shrink_toward(
    segment: np.ndarray, overall: np.ndarray, people: int, prior: float
) -> np.ndarray:
    """A segment's item scores as shares, shrunk toward the overall shares.

    ``prior`` people of overall taste are added to the segment's ``people``: a small
    segment leans on the overall scores, a large one speaks for itself, and items the
    segment never touched are still ordered by the overall scores.

    Returns:
        (n_items,) float32 shares (summing to 1 when either input has any mass).
    """
    segment = np.maximum(np.asarray(segment, dtype=np.float64), 0.0)
    overall = np.maximum(np.asarray(overall, dtype=np.float64), 0.0)
    seg_total, all_total = segment.sum(), overall.sum()
    if seg_total <= 0 and all_total <= 0:
        return np.zeros(len(segment), dtype=np.float32)
    if seg_total <= 0:
        weight = 1.0
    elif all_total <= 0:
        weight = 0.0
    else:
        weight = prior / (people + prior) if people + prior > 0 else 1.0
    mixed = np.zeros_like(segment)
    if weight < 1.0:
        mixed += (1.0 - weight) * segment / seg_total
    if weight > 0.0:
        mixed += weight * overall / all_total
    return mixed.astype(np.float32)
