"""The benchmark run: ingest, then each collection size in turn, then the report.

Sections follow the issue's list; every comparison inside a section is measured side by side
(rotating order) so that the ratios hold even on a busy machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np

from kb.collection import KnowledgeBase
from kb.embed import Embedder, resolve_model
from kb.index import VectorIndex, one_thread
from kb.models import Filters
from kb.settings import Settings

from . import ann, data, latency, synth, tuning
from .common import Clock, Latency, Spread, folder_mb, load_average, machine
from .ingest import IngestResult, measure as measure_ingest, variants as ingest_variants
from .server import LoadResult, Server, load, request, search_path
from .txtai_side import TxtaiSide, available as txtai_available


@dataclass
class ScaleResult:
    label: str
    chunks: int
    kind: str
    generated: bool
    build: dict[str, float] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)
    parts: dict[str, Latency] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    http: dict[str, Latency] = field(default_factory=dict)
    startup: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)  # a fresh `import sentence_transformers`, seconds
    peak_rss_mb: float = float("nan")
    index_mb: float = float("nan")
    db_mb: float = float("nan")
    load: list[LoadResult] = field(default_factory=list)
    load_torch_default: list[LoadResult] = field(default_factory=list)
    ann: list = field(default_factory=list)
    ann_note: str = ""
    fts: dict = field(default_factory=dict)
    cache: dict[str, Latency] = field(default_factory=dict)
    faiss_threads: dict[str, Latency] = field(default_factory=dict)
    mmap: dict = field(default_factory=dict)


@dataclass
class Results:
    config: object
    machine: dict[str, str]
    settings: Settings
    ingest: list[IngestResult] = field(default_factory=list)
    encode: dict[str, Spread] = field(default_factory=dict)
    ingest_variants: dict[str, float] = field(default_factory=dict)
    variant_files: int = 0
    query_threads: dict[str, Latency] = field(default_factory=dict)
    scales: list[ScaleResult] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    minutes: float = 0.0
    txtai: bool = False
    passage_set: str = data.PASSAGE_SET
    errors: list[str] = field(default_factory=list)  # sections that failed; the run goes on without them


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


ERRORS: list[str] = []


@contextmanager
def guarded(label: str):
    """A section that may fail without costing the rest of a 40-minute run: the failure is logged
    and reported."""
    try:
        yield
    except Exception as exc:  # any failure: report it, keep the other sections
        log(f"FAILED {label}: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        ERRORS.append(f"{label}: {type(exc).__name__}: {exc}"[:300])


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every few seconds: how busy the machine was."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.values, self._done = every, [], threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.values.append(os.getloadavg()[0])

    def stop(self) -> list[float]:
        self._done.set()
        self.join()
        return self.values


class Queries:
    """Distinct queries handed out in disjoint slices, so no server ever sees one twice."""

    def __init__(self, texts: list[str], size: int):
        self.pool = data.query_pool(size, texts)
        self.cursor = 0

    def take(self, n: int) -> list[str]:
        if self.cursor + n > len(self.pool):
            self.cursor = 0  # wrap: only across servers, each of which starts with an empty cache
        out = self.pool[self.cursor:self.cursor + n]
        self.cursor += n
        return out


def run(config, work: Path) -> dict:
    began = time.perf_counter()
    sampler = LoadSampler()
    sampler.start()
    settings = Settings.from_env(data_dir=work / "unused")
    results = Results(config, machine(), settings)
    results.machine["load average at start (1/5/15 min)"] = load_average()
    embedder = Embedder.for_settings(settings)
    log("loading the model")
    embedder.model
    embedder.encode(["warm up"] * 8)
    encode = latency.raw_encoder(embedder.model)
    txtai = None
    if config.txtai and txtai_available():
        txtai = TxtaiSide(resolve_model(settings.model), encode)
        results.txtai = True

    ERRORS.clear()
    if config.corpus_rounds:
        log("ingest: sample corpus")
        with guarded("sample corpus ingest"):
            results.ingest.append(measure_ingest("sample corpus", data.CORPUS, data.corpus_bytes() / 1e6,
                                                 len(data.corpus_files()), work, embedder, config.corpus_rounds,
                                                 txtai))
    log(f"ingest: {config.passages} {data.PASSAGE_SET}")
    records = data.passages(config.passages)
    source = work / "msmarco-src"
    size = data.write_passages(records, source)
    msmarco = measure_ingest(data.PASSAGE_SET, source, size / 1e6, len(records), work, embedder,
                             config.ingest_rounds, txtai, config.txtai_ingest_rounds)
    results.ingest.append(msmarco)
    for result in results.ingest:
        log(f"ingest {result.name}: " + ", ".join(f"{k} {min(v):.1f} s" for k, v in result.seconds.items()))

    log("tuning: encoder batching and threads")
    with guarded("encoder batching"):
        results.encode = tuning.encode_batching(embedder.model, msmarco.texts[:config.encode_texts], variants(),
                                                rounds=config.encode_rounds)
    if config.variant_passages:
        log("tuning: kb ingest variants")
    with guarded("kb ingest variants"):
        subset = records[:config.variant_passages]
        if subset:
            data.write_passages(subset, work / "variant-src")
            results.variant_files = len(subset)
            results.ingest_variants = ingest_variants(work / "variant-src", work, embedder)
    queries = Queries([r["text"] for r in records], 20_000)
    with guarded("query threads"):
        results.query_threads = tuning.query_threads(encode, queries.take(min(60, config.queries)))

    embedder.warm()  # from here on the process answers queries, as kb serve does
    import torch

    torch.set_num_threads(max(1, settings.query_threads))  # the raw torch encoder too, as kb serve's would
    ids, vectors, texts = collection_arrays(msmarco.data_dir, embedder)
    results.scales.append(measure_scale(config, f"{len(ids):,} ({data.PASSAGE_SET}, embedded)", msmarco.data_dir, ids,
                                        vectors, texts, False, embedder, encode, txtai, queries, {}))
    for count in config.scales:
        log(f"building {count:,} generated chunks")
        with guarded(f"{count:,} chunks"):
            built = synth.build(work / f"generated-{count}", count, vectors, texts, settings)
            scale = measure_scale(config, f"{count:,} (generated vectors)", built.data_dir, built.ids,
                                  built.vectors, built.texts, True, embedder, encode, txtai, queries,
                                  {"store (documents, chunks, FTS5, embeddings) s": built.store_seconds,
                                   f"vector index ({built.kind}) s": built.index_seconds})
            results.scales.append(scale)
            del built
        shutil.rmtree(work / f"generated-{count}", ignore_errors=True)

    results.errors = list(ERRORS)
    results.loads = sampler.stop()
    results.machine["load average at end (1/5/15 min)"] = load_average()
    results.minutes = (time.perf_counter() - began) / 60
    return plain(results)


def plain(results: Results) -> dict:
    """The results as JSON-ready data: what the report is rendered from."""
    out = _plain(asdict(results))
    for entry in out["ingest"]:
        entry["texts"] = len(entry["texts"])  # the count is what the report needs
    out["cores"] = os.cpu_count()
    out["date"] = time.strftime("%Y-%m-%d")
    return out


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def variants() -> list[tuple[str, int, int, int]]:
    """(label, texts per encode call, batch size, torch threads) for the batching comparison."""
    import torch

    t = torch.get_num_threads()
    everything = 1 << 30
    return [
        (f"calls of 32 texts, batch 32, {t} threads (kb ingest before: 32 files per ingest batch)", 32, 32, t),
        (f"calls of 32 texts, batch 16, {t} threads", 32, 16, t),
        (f"one call (sorted by length), batch 32, {t} threads (raw encode)", everything, 32, t),
        (f"one call (sorted by length), batch 16, {t} threads (kb ingest now)", everything, 16, t),
        (f"one call (sorted by length), batch 8, {t} threads", everything, 8, t),
        ("one call (sorted by length), batch 16, 1 thread", everything, 16, 1),
    ]


def collection_arrays(data_dir: Path, embedder) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Chunk ids, their vectors and their embedded texts, from an ingested collection."""
    kb = KnowledgeBase.open(Settings(data_dir=data_dir), embedder)
    try:
        ids, hashes, cached = kb.store.chunk_vectors(kb.settings.model)
        texts = kb._texts_for_hashes(list(dict.fromkeys(hashes)))
        return ids, np.vstack([cached[h] for h in hashes]).astype(np.float32), [texts[h] for h in hashes]
    finally:
        kb.close()


def measure_scale(config, label: str, data_dir: Path, ids, vectors, texts, generated: bool, embedder, encode,
                  txtai, queries: Queries, build: dict) -> ScaleResult:
    count = len(ids)
    if not config.load_scale:  # no generated collections: the ingested one takes the load test
        config = replace(config, load_scale=count)
    kb = KnowledgeBase.open(Settings.from_env(data_dir=data_dir), embedder)
    kb.refresh()
    scale = ScaleResult(label, count, kb.index.kind, generated, dict(build))
    exact = latency.exact_index(ids, vectors)
    tx_hybrid = tx_dense = None
    if txtai is not None and count <= config.txtai_max:
        log(f"{count:,}: txtai index (vectors given)")
        with guarded(f"txtai index at {count:,}"):
            with Clock() as clock:
                tx_hybrid = txtai.build(texts, vectors, hybrid=True)
            scale.build["txtai hybrid index (vectors given) s"] = clock.seconds
            tx_dense = txtai.build(texts, vectors, hybrid=False)
    n = config.queries_large if count >= 1_000_000 else config.queries
    log(f"{count:,}: in-process latency, {n} queries")
    runs = latency.systems(kb, exact, encode, tx_hybrid, tx_dense)
    scale.latency = latency.measure(runs, queries.take(n))
    scale.parts = latency.parts(kb, exact, encode, queries.take(min(n, 50)))
    for side in (tx_hybrid, tx_dense):
        if side is not None:
            side.close()
    from kb.search import Searcher

    searcher = Searcher(kb)
    with guarded(f"time breakdown at {count:,}"), one_thread():
        for mode in ("hybrid", "dense"):
            scale.breakdown[mode] = tuning.breakdown(searcher, queries.take(min(n, 40)), mode)
    largest = count == max([*config.scales, count])
    if count == config.load_scale or largest:
        log(f"{count:,}: FTS5 query shapes, FAISS threads")
        with guarded(f"FTS5 shapes at {count:,}"):
            scale.fts = tuning.fts_shapes(kb.store, queries.take(min(n, 100)))
        with guarded(f"FAISS threads at {count:,}"):
            scale.faiss_threads = tuning.faiss_threads(exact, [encode(q) for q in queries.take(30)])
    if count == config.load_scale:
        with guarded(f"query cache at {count:,}"):
            scale.cache = tuning.query_cache(searcher, queries.take(min(n, 60)))
    if scale.kind == "hnsw" or (largest and not any(s >= kb.settings.hnsw_threshold for s in config.scales)):
        log(f"{count:,}: approximate index against exact search")
        with guarded(f"approximate index at {count:,}"):
            scale.ann, scale.ann_note = approximate(kb, exact, ids, vectors, encode, queries)
    kb.close()
    del exact

    scale.index_mb = folder_mb(data_dir / "index")
    scale.db_mb = sum(os.path.getsize(p) for p in data_dir.glob("kb.sqlite3*")) / 1024 ** 2
    if largest and count >= 100_000:
        log(f"{count:,}: index loading, read against memory-mapped")
        with guarded(f"index loading at {count:,}"):
            scale.mmap = tuning.mmap_load(data_dir / "index" / "vectors.faiss")
    with guarded(f"kb serve at {count:,}"):
        serve(config, scale, data_dir, queries)
    return scale


def approximate(kb, exact, ids, vectors, encode, queries: Queries) -> tuple[list, str]:
    index, note = kb.index, ""
    if index.kind != "hnsw":  # quick runs stay below kb's switch: build the same HNSW to exercise it
        index = VectorIndex(vectors.shape[1], "hnsw", kb.settings.model)
        index.add(ids, vectors)
        note = f"HNSW built for this test: {len(ids):,} vectors is below kb's switch to approximate search"
    q = np.vstack([encode(t) for t in queries.take(200 if len(ids) >= 100_000 else 50)])
    rows = ann.measure(index, exact, q)
    allowed = kb.store.allowed_chunk_ids(Filters(site=[synth.SITES[3]]))
    if 0 < len(allowed) < len(ids):
        share = len(allowed) / len(ids)
        rows += ann.measure(index, exact, q, ef_values=(), allowed=allowed,
                            label=f"one site's chunks ({share:.0%}), ")
    return rows, note


def serve(config, scale: ScaleResult, data_dir: Path, queries: Queries) -> None:
    rounds = 1 if scale.chunks >= 1_000_000 else config.startup_rounds
    log(f"{scale.chunks:,}: kb serve, start-up x{rounds}")
    server = None
    for r in range(rounds):
        if server is not None:
            server.stop()
        if scale.chunks == config.load_scale:
            scale.imports.append(import_seconds())
        server = Server(data_dir)
        scale.startup.append(server.start(probe=queries.take(1)[0]))
    try:
        log(f"{scale.chunks:,}: HTTP, one client")
        scale.http = http_single(server.port, queries.take(2 * config.http_queries))
        if scale.chunks == config.load_scale:
            log(f"{scale.chunks:,}: load test {config.load_levels} clients, beside a server on torch's own threads")
            with Server(data_dir, env={"KB_QUERY_THREADS": "0"}) as single:
                single.start(probe=queries.take(1)[0])
                for level in config.load_levels:
                    cap = max(40, int(level * config.load_seconds * 40))
                    pair = [(server, scale.load), (single, scale.load_torch_default)]
                    for target, into in (pair if level % 2 else pair[::-1]):
                        into.append(load(target.port, queries.take(cap), level, config.load_seconds,
                                         max_requests=cap))
        scale.peak_rss_mb = server.peak_rss_mb()
    finally:
        server.stop()


def import_seconds() -> float:
    """Seconds a fresh Python process takes to import sentence-transformers (torch and
    transformers come with it), timed inside that process."""
    import subprocess

    code = ("import time; t = time.perf_counter(); import sentence_transformers; "
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def http_single(port: int, queries: list[str]) -> dict[str, Latency]:
    """One client on one keep-alive connection, hybrid and dense alternating query by query."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    millis = {"hybrid": [], "dense": []}
    try:
        for n, query in enumerate(queries):
            mode = "hybrid" if n % 2 == 0 else "dense"
            started = time.perf_counter()
            status, payload = request(port, search_path(query, mode), conn=conn)
            if status != 200:
                raise RuntimeError(f"/api/search answered {status}: {payload}")
            millis[mode].append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return {f"HTTP {mode}": Latency.of(values) for mode, values in millis.items()}
