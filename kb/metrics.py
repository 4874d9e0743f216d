"""Retrieval metrics as BEIR / pytrec_eval compute them. Pure functions over ranked ids and judgments.

`qrels` maps a document id to its graded relevance (0 = judged not relevant).
"""

from __future__ import annotations

import math

import numpy as np


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


def ndcg_at_k(ranked: list[str], qrels: dict[str, int], k: int = 10) -> float:
    """Graded gains, log2 discount, the ideal built from every judged document."""
    ideal = dcg(sorted((g for g in qrels.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(qrels.get(d, 0), 0) for d in ranked[:k]]) / ideal


def recall_at_k(ranked: list[str], qrels: dict[str, int], k: int) -> float:
    relevant = {d for d, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: list[str], qrels: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0-100), as numpy's default."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def bootstrap_interval(values: list[float], confidence: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean over queries: how far the mean could move with
    another sample of questions like these. Seeded, so the same figures give the same interval."""
    if not values:
        return (0.0, 0.0)
    data = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))
    means = data[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return (float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))
