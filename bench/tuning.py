"""Measurements behind the tuning choices: encoder batching and threads, the query-vector cache,
the FTS5 query shape and memory-mapped index loading. Each compares variants side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from sqlalchemy.dialects import sqlite

from kb.models import Filters
from kb.query import fts_match, terms
from kb.storage.filters import conditions
from kb.storage.schema import documents

from .common import Latency, Spread
from .latency import forget_queries


def encode_batching(model, texts: list[str], variants: list[tuple[str, int, int, int]],
                    rounds: int = 2) -> dict[str, Spread]:
    """Texts/s for (label, texts per `encode` call, batch size, torch threads) variants.

    kb's ingest hands the encoder one ingest batch at a time (`group` documents in file order);
    a raw `encode` of everything at once lets sentence-transformers sort all texts by length, so
    its batches carry less padding. Variants run in rotating order, in `rounds` rounds.
    """
    before = torch.get_num_threads()
    out: dict[str, list[float]] = {label: [] for label, *_ in variants}
    try:
        for r in range(rounds):
            for label, per_call, batch, threads in variants[r % len(variants):] + variants[:r % len(variants)]:
                torch.set_num_threads(threads)
                started = time.perf_counter()
                for start in range(0, len(texts), per_call):
                    model.encode(texts[start:start + per_call], batch_size=batch, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
                out[label].append(len(texts) / (time.perf_counter() - started))
    finally:
        torch.set_num_threads(before)
    return {label: Spread.of(values) for label, values in out.items()}


def query_threads(encode, queries: list[str]) -> dict[str, Latency]:
    """Encoding one query with torch's default threads against one thread, query by query."""
    return _threads_side_by_side(torch.get_num_threads, torch.set_num_threads, queries, encode, "thread")


def faiss_threads(exact, vectors: list) -> dict[str, Latency]:
    """One exact FAISS search (k=100) with FAISS's default OpenMP threads against one thread."""
    import faiss

    return _threads_side_by_side(faiss.omp_get_max_threads, faiss.omp_set_num_threads, vectors,
                                 lambda vector: exact.search(vector[None], 100), "OpenMP thread")


def _threads_side_by_side(get, set_threads, items: list, work, unit: str) -> dict[str, Latency]:
    """`work(item)` for every item with the library's default thread count and with one thread,
    alternating which goes first; the default is restored afterwards."""
    default = get()
    settings = sorted({default, 1}, reverse=True)
    millis = {t: [] for t in settings}
    try:
        for n, item in enumerate(items):
            for threads in (settings if n % 2 else settings[::-1]):
                set_threads(threads)
                started = time.perf_counter()
                work(item)
                millis[threads].append((time.perf_counter() - started) * 1000)
    finally:
        set_threads(default)
    return {f"{t} {unit}{'s' if t > 1 else ''}": Latency.of(v) for t, v in millis.items()}


def query_cache(searcher, queries: list[str]) -> dict[str, Latency]:
    """kb hybrid search for a query it has not seen against the same query again (cache hit)."""
    miss, hit = [], []
    for query in queries:
        forget_queries(searcher.kb.embedder)
        started = time.perf_counter()
        searcher.search(query, k=10, mode="hybrid")
        miss.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        searcher.search(query, k=10, mode="hybrid")
        hit.append((time.perf_counter() - started) * 1000)
    return {"new query (encoder runs)": Latency.of(miss), "same query again (vector cached)": Latency.of(hit)}


def breakdown(searcher, queries: list[str], mode: str = "hybrid") -> dict[str, float]:
    """Where one kb search spends its time: mean ms per search in each named step (timed by
    wrapping kb's own functions for the duration), the remainder under "everything else"."""
    from kb import search as search_module

    kb = searcher.kb
    index = kb.index
    spent: dict[str, float] = {}
    patches = [(kb.embedder, "encode_query", "encode the query"),
               (index, "search", "FAISS searches"),
               (kb.store, "keyword_search", "FTS5 BM25 query"),
               (kb.store, "chunk_rows", "fetch candidate rows"),
               (search_module, "fold", "fold near-duplicates")]
    originals = []
    for owner, name, label in patches:
        original = getattr(owner, name, None)
        if original is None:
            continue
        originals.append((owner, name, owner.__dict__.get(name)))
        spent[label] = 0.0
        setattr(owner, name, _timed_call(original, label, spent))
    total = 0.0
    searcher.search("warm up the caches", k=10, mode=mode)  # the admitted-ids cache fills on first use
    try:
        for query in queries:
            forget_queries(kb.embedder)
            started = time.perf_counter()
            searcher.search(query, k=10, mode=mode)
            total += time.perf_counter() - started
    finally:
        for owner, name, before in originals:
            if before is None:
                delattr(owner, name)
            else:
                setattr(owner, name, before)
    n = max(len(queries), 1)
    out = {label: seconds * 1000 / n for label, seconds in spent.items()}
    out["everything else (fusion, snippets, facets, Python)"] = max(total * 1000 / n - sum(out.values()), 0.0)
    out["whole search"] = total * 1000 / n
    return out


def _timed_call(function, label: str, spent: dict):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started
    return timed


WEIGHTS = "bm25(chunks_fts, 1.0, 0.6, 0.8)"


def fts_shapes(store, queries: list[str], limit: int = 100) -> dict[str, tuple[Latency, float]]:
    """FTS5 query shapes for the keyword side: latency and overlap of the top `limit` with kb's
    own query (1.0 = the same set). Filters are kb's defaults (active, any visibility)."""
    where = str(conditions(Filters(), documents.alias("d")).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    params: list = []
    shapes = {
        "kb as shipped (keyword_search without the searcher's admitted ids)": None,
        "FTS5 alone, no join (valid when filters admit every chunk)": lambda m: (
            f"SELECT rowid, {WEIGHTS} AS r FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY r LIMIT ?",
            [m, limit]),
        "FTS5 alone, rank MATCH 'bm25(...)' ORDER BY rank": lambda m: (
            "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? AND rank MATCH 'bm25(1.0, 0.6, 0.8)' "
            "ORDER BY rank LIMIT ?", [m, limit]),
        "FTS5 top 4×limit first, then join and filter": lambda m: (
            f"WITH top AS (SELECT rowid AS id, {WEIGHTS} AS r FROM chunks_fts WHERE chunks_fts MATCH ? "
            f"ORDER BY r LIMIT ?) SELECT top.id, top.r FROM top JOIN chunks c ON c.id = top.id "
            f"JOIN documents d ON d.id = c.doc_id WHERE {where} ORDER BY top.r LIMIT ?",
            [m, 4 * limit, *params, limit]),
    }
    names = list(shapes)
    millis = {name: [] for name in names}
    overlap = {name: [] for name in names}
    for n, query in enumerate(queries):
        match = fts_match(query)
        if not match:
            continue
        results = {}
        for name in names[n % len(names):] + names[:n % len(names)]:
            started = time.perf_counter()
            if shapes[name] is None:
                ids = [i for i, _ in store.keyword_search(terms(query), Filters(), limit)]
            else:
                with store.db.read() as conn:
                    sql, args = shapes[name](match)
                    ids = [r[0] for r in conn.exec_driver_sql(sql, tuple(args))]
            millis[name].append((time.perf_counter() - started) * 1000)
            results[name] = ids
        truth = set(results[names[0]])
        for name in names:
            overlap[name].append(len(truth & set(results[name])) / len(truth) if truth else 1.0)
    return {name: (Latency.of(millis[name]), sum(overlap[name]) / max(len(overlap[name]), 1)) for name in names}


MMAP_PROBE = """
import json, sys, time, faiss
flags = faiss.IO_FLAG_MMAP if sys.argv[2] == "mmap" else 0
started = time.perf_counter()
index = faiss.read_index(sys.argv[1], flags)
loaded = time.perf_counter() - started
import numpy as np
q = np.random.default_rng(0).standard_normal((20, index.d)).astype("float32")
q /= np.linalg.norm(q, axis=1, keepdims=True)
started = time.perf_counter()
for v in q:
    index.search(v[None], 10)
first = (time.perf_counter() - started) * 1000 / len(q)
rss = [l for l in open("/proc/self/status") if l.startswith(("VmHWM", "VmRSS"))]
print(json.dumps({"load_s": loaded, "search_ms": first, "peak_rss_mb": int(rss[0].split()[1]) / 1024}))
"""


def mmap_load(index_file: Path) -> dict[str, dict]:
    """Loading the saved FAISS index read into memory against memory-mapped, each in a fresh
    process: seconds to load, mean ms of the first 20 searches, peak RSS. A row that FAISS
    refuses (not every index type can be mapped) says so."""
    out = {}
    for mode in ("read", "mmap"):
        done = subprocess.run([sys.executable, "-c", MMAP_PROBE, str(index_file), mode],
                              capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            out[mode] = {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return out
