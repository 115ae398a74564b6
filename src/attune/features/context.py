"""Context profiles: when and where each item's audience uses it, as ranking features.

A context *key* is ``daypart`` or ``day_of_week`` (both read from an event's UTC
timestamp) or a field of an event's stored context (``device``, ``channel``, ...). For
every key with at least two values in the data, an item's profile counts its events per
value; its share of each value is shrunk toward the overall share with ``prior``
pseudo-events, so an item with few events looks like everyone else. A (query, item)
pair's feature is ``log(item share / overall share)`` at the query's value of the key:
above 0 where the item's audience is over-represented in that context, 0 for a value
the data never had, a query without that key, and items without events.

Requests name their context as the API does (``context.<key>``): ``hour`` (0–23, UTC)
or ``daypart`` (night, morning, afternoon, evening: hours 0–5, 6–11, 12–17, 18–23),
``day_of_week`` (mon … sun) and any other key by its label
(:func:`~attune.features.segments.segment_label`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from attune.features.interactions import SECONDS_PER_DAY, InteractionDataset, day_part
from attune.features.segments import lookup_path, segment_label

DAYPARTS = ("night", "morning", "afternoon", "evening")
"""Labels of :func:`~attune.features.interactions.day_part` buckets 0..3 (UTC)."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_KEYS = ("daypart", "day_of_week")
MAX_VALUES = 32
"""Values kept per key (the most frequent); rarer ones read as unknown."""
MIN_VALUE_EVENTS = 10
"""A value with fewer events in the data reads as unknown."""


def weekday(timestamps: np.ndarray) -> np.ndarray:
    """Monday = 0 … Sunday = 6 of each UTC Unix time (1970-01-01 was a Thursday)."""
    days = np.floor(np.asarray(timestamps, dtype=np.float64) / SECONDS_PER_DAY).astype(np.int64)
    return np.mod(days + 3, 7)


def event_labels(dataset: InteractionDataset, key: str) -> np.ndarray:
    """Per event, its label for ``key`` (object array of str, None where it has none)."""
    if key in TIME_KEYS:
        return time_labels(dataset.timestamp, key)
    return dataset.segment_values(f"context.{key}")


def time_labels(timestamps: np.ndarray, key: str) -> np.ndarray:
    """Per UTC Unix time, its label for time key ``key`` (object array of str)."""
    if key == "daypart":
        return np.asarray(DAYPARTS, dtype=object)[day_part(timestamps)]
    return np.asarray(WEEKDAYS, dtype=object)[weekday(timestamps)]


def request_label(context: Mapping[str, Any] | None, key: str) -> str | None:
    """A request context's label for ``key`` (None: not given or not understood)."""
    if not context:
        return None
    if key == "daypart":
        hour = _hour(context.get("hour"))
        if hour is not None:
            return DAYPARTS[hour // 6]
        label = segment_label(context.get("daypart"))
        return label.lower() if label and label.lower() in DAYPARTS else None
    if key == "day_of_week":
        label = segment_label(context.get("day_of_week"))
        short = label.lower()[:3] if label else None
        return short if short in WEEKDAYS else None
    return segment_label(context.get(key))


def context_value_problem(key: str, value: str) -> str | None:
    """Why a request's ``context.<key>`` value cannot mean anything (None: it can).
    Only the time keys have a fixed vocabulary; any other key takes any label."""
    if key == "hour" and _hour(value) is None:
        return "an hour of the day, 0 to 23 (UTC)"
    if key == "daypart" and (segment_label(value) or "").lower() not in DAYPARTS:
        return f"one of {', '.join(DAYPARTS)}"
    if key == "day_of_week" and (segment_label(value) or "").lower()[:3] not in WEEKDAYS:
        return f"a day of the week: {', '.join(WEEKDAYS)} (or the full name)"
    return None


def _hour(value: Any) -> int | None:
    try:
        hour = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return hour if 0 <= hour < 24 else None


@dataclass(frozen=True)
class ContextProfiles:
    """Per-item event counts over the values of each context key the data has.

    Attributes:
        keys: the keys with a profile, in the order asked for.
        labels: per key, the known values (most frequent first).
        counts: per key, (n_items, n_values) float64 event counts.
        prior: pseudo-events of the overall share added to every item.
    """

    keys: tuple[str, ...] = ()
    labels: tuple[np.ndarray, ...] = ()
    counts: tuple[np.ndarray, ...] = ()
    prior: float = 20.0
    _lift: list[np.ndarray] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, dataset: InteractionDataset, keys: Sequence[str], prior: float) -> ContextProfiles:
        """Profiles of the keys that have at least two values in ``dataset``'s events.

        Time keys need real timestamps: data whose events all fall in one daypart (or
        one day of the week) gives no profile for that key.
        """
        found_keys, found_labels, found_counts = [], [], []
        items = np.asarray(dataset.item_index, dtype=np.int64)
        for key in keys:
            if key not in TIME_KEYS and dataset.event_context is None:
                continue
            values = event_labels(dataset, key)
            present = np.flatnonzero(pd.notna(values))
            if not len(present):
                continue
            frequency = pd.Series(values[present]).value_counts()
            kept = _kept_values([str(v) for v in frequency.index], frequency.to_numpy())
            if not kept:
                continue
            labels = np.array([str(frequency.index[j]) for j in kept], dtype=str)
            codes = pd.Index(labels).get_indexer(values[present])
            known = codes >= 0
            flat = items[present][known] * len(labels) + codes[known]
            counts = np.bincount(flat, minlength=dataset.n_items * len(labels))
            found_keys.append(key)
            found_labels.append(labels)
            found_counts.append(counts.reshape(dataset.n_items, len(labels)).astype(np.float64))
        return cls(tuple(found_keys), tuple(found_labels), tuple(found_counts), prior)

    def without(
        self, items: np.ndarray, timestamps: np.ndarray, contexts: np.ndarray | None
    ) -> ContextProfiles:
        """The profiles :meth:`fit` gives once these events are left out of its data.

        Their counts are subtracted, and the fit's rules applied again to what is left:
        a value with fewer than :data:`MIN_VALUE_EVENTS` events is dropped, values are
        ordered most frequent first, a key with fewer than two values goes. Exact, except
        that a value beyond a key's :data:`MAX_VALUES` (not kept) cannot come back.

        Args:
            items: (n_events,) item index of each event.
            timestamps: (n_events,) their UTC Unix times.
            contexts: (n_events,) their context dicts (or None); None when unknown: keys
                read from contexts then keep their counts.
        """
        items = np.asarray(items, dtype=np.int64)
        found_keys, found_labels, found_counts = [], [], []
        for k, (key, labels, counts) in enumerate(
            zip(self.keys, self.labels, self.counts, strict=True)
        ):
            values: Sequence[Any] | None
            if key in TIME_KEYS:
                values = time_labels(timestamps, key)
            elif contexts is not None:
                values = [segment_label(lookup_path(c, key)) for c in contexts]
            else:
                values = None
            if values is not None:
                codes = self.encode(values, k)
                known = codes >= 0
                theirs = np.bincount(
                    items[known] * len(labels) + codes[known], minlength=counts.size
                ).reshape(counts.shape)
                counts = np.maximum(counts - theirs, 0.0)
            order = _kept_values([str(label) for label in labels], counts.sum(axis=0))
            if order:
                found_keys.append(key)
                found_labels.append(labels[order])
                found_counts.append(counts[:, order])
        return ContextProfiles(
            tuple(found_keys), tuple(found_labels), tuple(found_counts), self.prior
        )

    def __bool__(self) -> bool:
        return bool(self.keys)

    @property
    def names(self) -> list[str]:
        """Feature names, one per key."""
        return [f"context_{key}_lift" for key in self.keys]

    def log_lift(self, k: int) -> np.ndarray:
        """(n_items, n_values) float64 for key ``k``: log(shrunk item share / overall share)."""
        if not self._lift:
            for counts in self.counts:
                overall = counts.sum(axis=0)
                overall = overall / max(float(overall.sum()), 1.0)
                totals = counts.sum(axis=1, keepdims=True)
                share = (counts + self.prior * overall) / np.maximum(totals + self.prior, 1e-12)
                ratio = np.divide(share, overall, out=np.ones_like(share), where=overall > 0)
                self._lift.append(np.log(np.maximum(ratio, 1e-12)))
        return self._lift[k]

    def encode(self, labels: Sequence[Any], k: int) -> np.ndarray:
        """(n,) int64 code of each label among key ``k``'s values (-1: unknown or None)."""
        return np.asarray(
            pd.Index(self.labels[k]).get_indexer(pd.Index(list(labels), dtype=object)),
            dtype=np.int64,
        )

    def event_codes(self, dataset: InteractionDataset) -> np.ndarray:
        """(n_events, n_keys) int64: each event's value code per key (-1: unknown)."""
        out = np.full((len(dataset.timestamp), len(self.keys)), -1, dtype=np.int64)
        for k, key in enumerate(self.keys):
            out[:, k] = self.encode(event_labels(dataset, key), k)
        return out

    def request_codes(
        self, contexts: Sequence[Mapping[str, Any] | None] | None, n: int
    ) -> np.ndarray:
        """(n, n_keys) int64 codes of ``n`` request contexts (None: no context at all)."""
        out = np.full((n, len(self.keys)), -1, dtype=np.int64)
        if contexts is None:
            return out
        for k, key in enumerate(self.keys):
            out[:, k] = self.encode([request_label(c, key) for c in contexts], k)
        return out

    def columns(self, codes: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Feature columns of pairs: ``codes`` (n_pairs, n_keys) the pair's query
        context, ``items`` (n_pairs,) its item; 0 where the value is unknown."""
        out = {}
        for k, name in enumerate(self.names):
            code = codes[:, k]
            known = code >= 0
            value = np.zeros(len(items))
            value[known] = self.log_lift(k)[items[known], code[known]]
            out[name] = value
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, key in enumerate(self.keys):
            out[f"{k}_{key}_labels"] = self.labels[k]
            out[f"{k}_{key}_counts"] = self.counts[k]
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prior: float) -> ContextProfiles:
        """The inverse of :meth:`to_arrays` (empty profiles from no arrays)."""
        found = sorted(
            (int(name.split("_", 1)[0]), name.split("_", 1)[1][: -len("_labels")])
            for name in arrays
            if name.endswith("_labels")
        )
        return cls(
            tuple(key for _, key in found),
            tuple(np.asarray(arrays[f"{k}_{key}_labels"]).astype(str) for k, key in found),
            tuple(np.asarray(arrays[f"{k}_{key}_counts"], dtype=np.float64) for k, key in found),
            prior,
        )


def _kept_values(labels: Sequence[str], totals: np.ndarray) -> list[int]:
    """Which of a key's values a profile keeps, most events first (then by label): those
    with at least :data:`MIN_VALUE_EVENTS` events, at most :data:`MAX_VALUES`; none when
    fewer than two are left (the key tells nothing)."""
    order = sorted(range(len(labels)), key=lambda j: (-totals[j], labels[j]))
    kept = [j for j in order if totals[j] >= MIN_VALUE_EVENTS][:MAX_VALUES]
    return kept if len(kept) >= 2 else []
