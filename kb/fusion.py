"""Fusing dense and keyword rankings into one. Pure functions over (id, score) lists."""

from __future__ import annotations

Ranking = list[tuple[int, float]]


def rrf(rankings: list[Ranking], weights: list[float] | None = None, k: int = 60) -> Ranking:
    """Weighted reciprocal rank fusion."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def minmax(ranking: Ranking) -> dict[int, float]:
    """Scores rescaled to 0-1 within the list (the best is 1, the last candidate 0)."""
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    low, high = min(values), max(values)
    span = high - low
    return {item: (s - low) / span if span > 0 else 1.0 for item, s in ranking}


def convex(dense: Ranking, keyword: Ranking, dense_weight: float = 0.7) -> Ranking:
    """Convex combination of min-max normalized scores; a list missing an item gives it 0."""
    d, kw = minmax(dense), minmax(keyword)
    items = set(d) | set(kw)
    scores = {i: dense_weight * d.get(i, 0.0) + (1 - dense_weight) * kw.get(i, 0.0) for i in items}
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
