"""The approximate index against exact search on the same vectors: recall@10 and the speed-up.

kb's own search path (`VectorIndex.search`, as configured) gives the headline; other efSearch
values are read from the same graph to show the trade-off. A filtered row (one site's chunks,
through the same id selector kb uses) shows the case HNSW handles worst.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np

from kb.index import one_thread


@dataclass
class AnnRow:
    setting: str
    recall_at_10: float
    approx_ms: float  # median per query
    exact_ms: float  # median per query, measured interleaved with approx_ms

    @property
    def speedup(self) -> float:
        return self.exact_ms / self.approx_ms if self.approx_ms else float("nan")


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000, out


def recall(found: list[int], truth: list[int], k: int = 10) -> float:
    return len(set(found[:k]) & set(truth[:k])) / k


def measure(index, exact, queries: np.ndarray, ef_values=(128, 256, 512, 1024, 2048, 4096),
            allowed: np.ndarray | None = None, label: str = "", timed: int = 40) -> list[AnnRow]:
    """Rows for kb's configured search and for each efSearch value, all against exact search.

    Recall uses every query (the exact answers come from one batched search); times use the
    first `timed` queries, exact and approximate alternating query by query.
    """
    sel = (lambda: faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))) if allowed is not None \
        else (lambda: None)
    exact_params = faiss.SearchParameters(sel=sel()) if allowed is not None else None
    _, truth = exact.search(np.ascontiguousarray(queries, dtype=np.float32), 10, params=exact_params)
    variants = {"kb as configured": lambda v: [i for i, _ in index.search(v, 10, allowed)]}
    inner = index._index  # the FAISS IndexIDMap2 kb holds, for the efSearch sweep
    for ef in ef_values:
        variants[f"efSearch {ef}"] = _sweep(inner, ef, sel)
    with one_thread():  # as kb searches, for both sides
        return _rows(variants, exact, exact_params, queries, truth, label, timed)


def _rows(variants, exact, exact_params, queries, truth, label, timed) -> list[AnnRow]:
    rows, exact_ms = [], []
    for name, search in variants.items():
        scores = [recall(search(v), [int(i) for i in truth[n] if i >= 0]) for n, v in enumerate(queries)]
        approx_ms = []
        for n, vector in enumerate(queries[:timed]):
            if rows:  # exact search is timed once, side by side with kb's configured search
                approx_ms.append(_timed(lambda: search(vector))[0])
                continue
            for which in ((0, 1) if n % 2 else (1, 0)):  # alternate which runs first
                if which == 0:
                    approx_ms.append(_timed(lambda: search(vector))[0])
                else:
                    exact_ms.append(_timed(lambda: exact.search(vector[None], 10, params=exact_params))[0])
        rows.append(AnnRow(f"{label}{name}", float(np.mean(scores)), float(np.median(approx_ms)),
                           float(np.median(exact_ms))))
    return rows


def _sweep(inner, ef: int, sel):
    def search(vector):
        selector = sel()
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector) if selector is not None else \
            faiss.SearchParametersHNSW(efSearch=ef)
        _, ids = inner.search(np.ascontiguousarray(vector, dtype=np.float32)[None], 10, params=params)
        return [int(i) for i in ids[0] if i >= 0]
    return search
