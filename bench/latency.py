"""Query latency in-process: kb (hybrid, dense) against raw encode + FAISS and against txtai.

Every query goes through every system, in an order that rotates from query to query, so a busy
moment on the machine falls on all of them alike. All sides share the process's settings: torch
on kb's query threads, FAISS on one thread per search as kb searches. kb's query-vector cache is emptied before each
kb search: the figures are for a query kb has not seen (a cache hit is measured in tuning).
"""

from __future__ import annotations

import time
from typing import Callable

import faiss
import numpy as np

from kb import fusion
from kb.index import one_thread
from kb.models import Filters
from kb.query import terms
from kb.search import Searcher

from .common import Latency

System = Callable[[str], object]


def forget_queries(embedder) -> None:
    """Empty kb's remembered query vectors, so the next search runs the encoder."""
    cache = getattr(embedder, "_queries", None)
    if cache is not None:
        cache.clear()


def raw_encoder(model) -> Callable[[str], np.ndarray]:
    def encode(query: str) -> np.ndarray:
        return model.encode([query], normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)[0].astype(np.float32)
    return encode


def exact_index(ids: np.ndarray, vectors: np.ndarray):
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def systems(kb, exact, encode, txtai=None, txtai_dense=None) -> dict[str, System]:
    """The things compared, each a function of the query text."""
    searcher = Searcher(kb)

    def kb_search(mode: str) -> System:
        def run(query: str):
            forget_queries(kb.embedder)
            return searcher.search(query, k=10, mode=mode)
        return run

    def raw_dense(query: str):
        return exact.search(encode(query)[None], 10)

    def raw_hybrid(query: str):
        scores, ids = exact.search(encode(query)[None], 100)
        dense = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        keyword = kb.store.keyword_search(terms(query), Filters(), 100)
        return fusion.convex(dense, keyword, kb.settings.dense_weight)[:10]

    out = {
        "kb hybrid": kb_search("hybrid"),
        "kb dense": kb_search("dense"),
        "raw encode + exact FAISS": raw_dense,
        "raw hybrid (encode + exact FAISS + BM25 + fusion)": raw_hybrid,
    }
    if kb.index.kind != "flat":
        out["raw encode + kb's approximate index"] = lambda q: kb.index.search(encode(q), 10)
    if txtai is not None:
        out["txtai hybrid"] = lambda q: txtai.search(q, 10)
    if txtai_dense is not None:
        out["txtai dense"] = lambda q: txtai_dense.search(q, 10)
    return out


def measure(runs: dict[str, System], queries: list[str], warmup: int = 5, cpu: dict | None = None,
            server_seconds: Callable[[], float] | None = None) -> dict[str, Latency]:
    """Each query through every system (rotating order); per-system latency percentiles. With a
    `cpu` dict, also each system's mean CPU milliseconds per search, into it: this process's
    (every thread) and, with `server_seconds` (a database server's CPU seconds so far), the server's."""
    names = list(runs)
    millis: dict[str, list[float]] = {name: [] for name in names}
    spent = {name: [0.0, 0.0] for name in names}
    with one_thread():  # FAISS on one thread for every side, as kb searches
        for query in queries[:warmup]:
            for name in names:
                runs[name](query)
        for n, query in enumerate(queries[warmup:]):
            for name in names[n % len(names):] + names[:n % len(names)]:
                server = server_seconds() if server_seconds else 0.0
                own = time.process_time()
                started = time.perf_counter()
                runs[name](query)
                millis[name].append((time.perf_counter() - started) * 1000)
                spent[name][0] += time.process_time() - own
                spent[name][1] += (server_seconds() - server) if server_seconds else 0.0
    if cpu is not None:
        cpu.update({name: {"process_ms": round(1000 * own / max(len(millis[name]), 1), 2),
                           "server_ms": round(1000 * server / max(len(millis[name]), 1), 2)}
                    for name, (own, server) in spent.items()})
    return {name: Latency.of(values) for name, values in millis.items()}


def parts(kb, exact, encode, queries: list[str]) -> dict[str, Latency]:
    """What one query costs piece by piece: encoding alone, exact FAISS alone, BM25 alone."""
    vectors = [encode(q) for q in queries]
    out: dict[str, list[float]] = {"encode one query": [], "exact FAISS search (k=100)": [],
                                   "FTS5 BM25 (k=100)": []}
    for query, vector in zip(queries, vectors):
        started = time.perf_counter()
        encode(query)
        out["encode one query"].append((time.perf_counter() - started) * 1000)
        with one_thread():
            started = time.perf_counter()
            exact.search(vector[None], 100)
            out["exact FAISS search (k=100)"].append((time.perf_counter() - started) * 1000)
        words = terms(query)
        started = time.perf_counter()
        kb.store.keyword_search(words, Filters(), 100)
        out["FTS5 BM25 (k=100)"].append((time.perf_counter() - started) * 1000)
    return {name: Latency.of(values) for name, values in out.items()}
