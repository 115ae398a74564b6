"""Interaction matrices: from stored events to weighted user × item matrices.

Id spaces: a dataset maps external ids (strings) to internal indices (rows for users,
columns for items). Models only see indices; the dataset translates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from attune.store.protocols import HistoryEvent

SECONDS_PER_DAY = 86_400.0

VALUE_MODES = ("ignore", "linear", "log1p")


@dataclass(frozen=True)
class WeightPolicy:
    """How much one event counts.

    Attributes:
        type_weights: weight per event type; types absent here count 1.0, and a weight
            of 0 drops the event from the matrix.
        value_modes: per event type, how ``value`` scales the weight: ``ignore``,
            ``linear`` (weight × value) or ``log1p`` (weight × log(1 + value)), for
            quantities and play counts.
        half_life_days: if set, an event's weight halves every this many days before the
            newest event in the data.
    """

    type_weights: Mapping[str, float] = field(default_factory=dict)
    value_modes: Mapping[str, str] = field(default_factory=dict)
    half_life_days: float | None = None

    def weights(self, types: np.ndarray, values: np.ndarray, ages_days: np.ndarray) -> np.ndarray:
        """Weights of events given their type, value and age (all arrays of one length)."""
        weight = np.ones(len(types), dtype=np.float64)
        if len(types):
            unique, inverse = np.unique(types.astype(str), return_inverse=True)
            per_type = np.array([self.type_weights.get(t, 1.0) for t in unique])
            weight = per_type[inverse]
            for event_type, mode in self.value_modes.items():
                if mode == "ignore":
                    continue
                mask = (types == event_type) & np.isfinite(values)
                if mode == "linear":
                    weight[mask] *= np.maximum(values[mask], 0.0)
                elif mode == "log1p":
                    weight[mask] *= np.log1p(np.maximum(values[mask], 0.0))
                else:
                    raise ValueError(f"unknown value mode {mode!r}; use one of {VALUE_MODES}")
        if self.half_life_days:
            weight = weight * np.exp2(-np.maximum(ages_days, 0.0) / self.half_life_days)
        return weight


@dataclass
class InteractionDataset:
    """Weighted interactions, with the event-level arrays they were built from.

    Attributes:
        user_ids: external user ids; position = internal user index.
        item_ids: external item ids; position = internal item index.
        user_index, item_index, weight, timestamp: one entry per kept event.
        reference_time: the newest event time (UTC Unix seconds); "now" for decay.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_index: np.ndarray
    item_index: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray
    reference_time: float

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """users × items, float32; repeated (user, item) events add up."""
        coo = sp.coo_matrix(
            (self.weight.astype(np.float32), (self.user_index, self.item_index)),
            shape=(self.n_users, self.n_items),
        )
        matrix = coo.tocsr()
        matrix.sum_duplicates()
        return matrix

    @cached_property
    def item_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids.tolist())}

    @cached_property
    def user_position(self) -> dict[str, int]:
        return {user: u for u, user in enumerate(self.user_ids.tolist())}

    def window(self) -> dict[str, float | int]:
        """The data window a model trained on this dataset has seen."""
        return {
            "events": len(self.weight),
            "users": self.n_users,
            "items": self.n_items,
            "start": float(self.timestamp.min()) if len(self.timestamp) else 0.0,
            "end": float(self.reference_time),
        }


def build_dataset(
    frame: pd.DataFrame, policy: WeightPolicy, extra_items: Sequence[str] = ()
) -> InteractionDataset:
    """Build a dataset from events (columns user_id, item_id, type, value, timestamp).

    Events whose weight is zero or less are dropped. ``extra_items`` (catalog items with
    no interactions yet) get columns too, after the interacted ones.
    """
    timestamps = frame["timestamp"].to_numpy(dtype=np.float64)
    reference = float(timestamps.max()) if len(timestamps) else 0.0
    ages = (reference - timestamps) / SECONDS_PER_DAY
    weights = policy.weights(
        frame["type"].to_numpy(dtype=object),
        frame["value"].to_numpy(dtype=np.float64, na_value=np.nan),
        ages,
    )
    keep = weights > 0
    kept = frame.loc[keep]
    user_codes, user_ids = pd.factorize(kept["user_id"].astype(str), sort=True)
    item_codes, item_ids = pd.factorize(kept["item_id"].astype(str), sort=True)
    item_list = list(item_ids)
    if extra_items:
        known = set(item_list)
        item_list += sorted({str(i) for i in extra_items} - known)
    return InteractionDataset(
        user_ids=np.asarray(user_ids, dtype=str),
        item_ids=np.asarray(item_list, dtype=str),
        user_index=user_codes.astype(np.int32),
        item_index=item_codes.astype(np.int32),
        weight=weights[keep],
        timestamp=timestamps[keep],
        reference_time=reference,
    )


def history_matrix(
    histories: Sequence[Sequence[HistoryEvent]],
    item_position: Mapping[str, int],
    n_items: int,
    policy: WeightPolicy,
) -> sp.csr_matrix:
    """One row per user over a model's items, weighted like the training data.

    Ages are measured from each user's own newest event, so a returning user's latest
    session counts most. Items the model does not know are skipped.
    """
    rows, cols, vals = [], [], []
    for row, history in enumerate(histories):
        known = [e for e in history if e.item_id in item_position]
        if not known:
            continue
        newest = max(e.timestamp for e in history)
        types = np.array([e.type for e in known], dtype=object)
        values = np.array([np.nan if e.value is None else e.value for e in known], dtype=np.float64)
        ages = np.array([(newest - e.timestamp) / SECONDS_PER_DAY for e in known])
        weights = policy.weights(types, values, ages)
        for event, weight in zip(known, weights, strict=True):
            if weight > 0:
                rows.append(row)
                cols.append(item_position[event.item_id])
                vals.append(weight)
    matrix = sp.csr_matrix(
        (np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(histories), n_items)
    )
    matrix.sum_duplicates()
    return matrix
