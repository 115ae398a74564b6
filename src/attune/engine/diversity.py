"""Re-ranking for variety: MMR, a cap per category, and calibrated genre proportions.

All three take candidates already ordered and scored by relevance and return the order
to show. Item similarity is the overlap of categories (Jaccard): cheap, explainable,
and available for items no model has seen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def mmr(
    relevance: Sequence[float],
    categories: Sequence[frozenset[str]],
    n: int,
    level: float,
) -> list[int]:
    """Maximal marginal relevance: pick ``n`` positions balancing relevance and novelty.

    Args:
        relevance: score per candidate (any scale; rescaled to [0, 1] here).
        categories: category set per candidate.
        n: how many to pick.
        level: 0 keeps the relevance order; 1 cares only about being unlike the picks.

    Returns:
        Candidate positions in the order to show.
    """
    count = len(relevance)
    if level <= 0 or count <= 1:
        return list(range(min(n, count)))
    top, bottom = max(relevance), min(relevance)
    spread = (top - bottom) or 1.0
    rel = [(r - bottom) / spread for r in relevance]
    chosen: list[int] = []
    closest = [0.0] * count  # highest similarity to anything chosen so far
    left = set(range(count))
    while left and len(chosen) < n:
        best = max(left, key=lambda i: ((1 - level) * rel[i] - level * closest[i], -i))
        chosen.append(best)
        left.discard(best)
        for i in left:
            closest[i] = max(closest[i], jaccard(categories[i], categories[best]))
    return chosen


def cap_per_category(
    order: Sequence[int],
    categories: Sequence[frozenset[str]],
    n: int,
    cap: int,
    first: int | None = None,
) -> list[int]:
    """``order`` (the first ``n`` of it) with no category more than ``cap`` times among
    its first ``first`` entries (default: all ``n``): items that would pass the cap wait
    until those ``first`` places are taken by compliant items, from anywhere in
    ``order``; only if too few comply do held items fill them, best first."""
    limit = n if first is None else min(first, n)
    counts: Counter[str] = Counter()
    kept, held = [], []
    for i in order:
        if len(kept) < limit and all(counts[c] < cap for c in categories[i]):
            kept.append(i)
            counts.update(categories[i])
        else:
            held.append(i)
    return (kept + held)[:n]


def calibrate(
    relevance: Sequence[float],
    categories: Sequence[frozenset[str]],
    target: Mapping[str, float],
    n: int,
    level: float,
) -> list[int]:
    """Calibrated re-ranking (after Steck, 2018): the list's category proportions follow
    ``target`` (the person's history), traded off against relevance by ``level``.

    Each pick maximises ``(1 - level) * relevance - level * KL(target || list)``, where an
    item spreads its weight evenly over its categories and the list distribution is
    smoothed so the divergence stays finite.
    """
    count = len(relevance)
    total = sum(target.values())
    if level <= 0 or count <= 1 or total <= 0:
        return list(range(min(n, count)))
    p = {c: w / total for c, w in target.items() if w > 0}
    top, bottom = max(relevance), min(relevance)
    spread = (top - bottom) or 1.0
    rel = [(r - bottom) / spread for r in relevance]
    alpha = 0.01
    mass: Counter[str] = Counter()
    chosen: list[int] = []
    left = set(range(count))

    def divergence(extra: Counter[str], size: int) -> float:
        kl = 0.0
        for c, pc in p.items():
            q = (mass[c] + extra[c]) / size if size else 0.0
            kl += pc * math.log(pc / ((1 - alpha) * q + alpha * pc))
        return kl

    while left and len(chosen) < n:
        size = len(chosen) + 1

        def gain(i: int, size: int = size) -> tuple[float, int]:
            share = Counter({c: 1.0 / len(categories[i]) for c in categories[i]})
            return ((1 - level) * rel[i] - level * divergence(share, size), -i)

        best = max(left, key=gain)
        chosen.append(best)
        left.discard(best)
        if categories[best]:
            mass.update({c: 1.0 / len(categories[best]) for c in categories[best]})
    return chosen
