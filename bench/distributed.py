"""Dask workers against a local ingest, side by side: the same passages ingested by `kb ingest`
alone and with `--dask` on a LocalCluster on this machine, and the two collections compared.

    python -m bench.distributed [--quick] [--passages N] [--workers 2] [--out docs/benchmarks.md]

The cluster (worker processes of one thread each, on 127.0.0.1) is started, and the model loaded
on every worker and by the local encoder, before the clock starts. The sides take turns, Dask
first (any warm-up of the machine favours the local ingest, the baseline), each ingest into
SQLite in a fresh data folder; the two last collections are compared. Writes its section of docs/benchmarks.md between markers, and the figures to
docs/benchmarks-distributed.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .common import marked_block, splice_marked, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- distributed:begin -->", "<!-- distributed:end -->"
TOLERANCE = 1e-5  # largest difference allowed between the two collections' vectors


@dataclass(frozen=True)
class Config:
    passages: int = 5000  # MS MARCO passages, one file each
    workers: int = 2  # worker processes, one thread each
    rounds: int = 2  # ingests per side, interleaved (the order turns each round): the machine is shared
    out: Path = ROOT / "docs" / "benchmarks.md"

    @classmethod
    def quick(cls) -> "Config":
        return cls(passages=200, rounds=1, out=ROOT / "artifacts" / "bench-quick" / "benchmarks.md")


@dataclass
class Results:
    config: dict
    machine: dict
    cluster: dict = field(default_factory=dict)  # {"workers", "threads_per_worker", "start_seconds", "warm_seconds"}
    ingest: dict = field(default_factory=dict)  # "local" | "dask" -> median "seconds" ("low", "high"),
    # "passages_per_s", "rounds" (each ingest's seconds, chunks and failed files), "chunks", "failed"
    ratio: float = 0.0  # Dask's throughput over the local ingest's, from the medians
    same: dict = field(default_factory=dict)  # {"documents", "chunks", "max_vector_difference", "identical"}
    load: dict = field(default_factory=dict)  # the machine's load average at the start and at the end
    minutes: float = 0.0


def log(message: str) -> None:
    print(f"[bench.distributed] {message}", file=sys.stderr, flush=True)


def run(config: Config, work: Path) -> dict:
    from distributed import Client, LocalCluster

    from ingest.distributed import prepare_files
    from ingest.pipeline import Candidate, ingest_paths
    from kb.collection import KnowledgeBase
    from kb.embed import Embedder
    from kb.models import DocMeta
    from kb.settings import Settings

    from . import data
    from .common import Spread, interleaved, load_average, machine
    from .run import _plain as plain_data

    began = time.perf_counter()
    results = Results(asdict(config), machine(), load={"start": load_average()})
    cache = Path(os.environ.get("KB_MODEL_CACHE") or work / "models")
    os.environ["KB_MODEL_CACHE"] = str(cache)  # the workers' too: one export for all
    records = data.passages(config.passages)
    data.write_passages(records, work / "passages")
    embedder = Embedder.for_settings(Settings(data_dir=work / "x", model_cache=cache)).warm()
    embedder.encode(["warm up the batch session"])
    log(f"start a LocalCluster of {config.workers} worker processes, one thread each")
    started = time.perf_counter()
    with LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(config.workers)
        results.cluster = {"workers": config.workers, "threads_per_worker": 1,
                           "start_seconds": round(time.perf_counter() - started, 1)}
        started = time.perf_counter()
        text = b"Warm up: every worker loads the model and starts its loader before the clock starts."
        warm = Candidate("warm.txt", Path("warm.txt"), text, hashlib.sha256(text).hexdigest(), "/warm.txt", DocMeta(), ())
        client.gather([client.submit(prepare_files, Settings(model_cache=cache), [warm], [None], workers=[worker],
                                     pure=False) for worker in client.nthreads()])  # in each worker's task thread
        results.cluster["warm_seconds"] = round(time.perf_counter() - started, 1)
        kbs: dict = {}  # each side's latest collection
        runs: dict[str, list] = {"dask": [], "local": []}

        def ingest(side: str):
            def one() -> float:
                if side in kbs:
                    kbs.pop(side).close()
                settings = Settings(data_dir=work / f"{side}-{len(runs[side])}", model_cache=cache,
                                    dask_scheduler=cluster.scheduler_address if side == "dask" else "")
                kb = kbs[side] = KnowledgeBase.open(settings, embedder)
                log(f"ingest {config.passages:,} passages, {side}, round {len(runs[side]) + 1}")
                started = time.perf_counter()
                report = ingest_paths(kb, [work / "passages"])
                seconds = time.perf_counter() - started
                runs[side].append({"seconds": round(seconds, 1), "chunks": kb.store.count("chunks"),
                                   "failed": len(report.failed)})
                return seconds
            return one

        # Dask first in the first round: any warm-up of the machine favours the local ingest, the baseline
        times = interleaved(config.rounds, {"dask": ingest("dask"), "local": ingest("local")})
    for side, seconds in times.items():
        spread = Spread.of(seconds)
        results.ingest[side] = {"seconds": round(spread.median, 1), "low": round(spread.low, 1),
                                "high": round(spread.high, 1), "passages_per_s": round(config.passages / spread.median, 1),
                                "rounds": runs[side], "chunks": runs[side][-1]["chunks"],
                                "failed": runs[side][-1]["failed"]}
    results.ratio = round(results.ingest["dask"]["passages_per_s"] / results.ingest["local"]["passages_per_s"], 3)
    results.same = compare(kbs["local"], kbs["dask"])
    for kb in kbs.values():
        kb.close()
    results.load["end"] = load_average()
    results.minutes = (time.perf_counter() - began) / 60
    return plain_data(asdict(results))


def compare(a, b) -> dict:
    """Whether two collections hold the same documents and chunk texts, and how far apart their
    vectors are."""
    import numpy as np

    def snapshot(kb):
        docs = sorted(kb.store.documents(include_retired=True), key=lambda d: d.source)
        passages = {d.id: kb.store.chunks_of(d.id) for d in docs}
        ids = np.array([p.id for d in docs for p in passages[d.id]], dtype=np.int64)
        return ([(d.source, d.sha256, d.title, d.published, d.mime, d.dup_of) for d in docs],
                [(d.source, p.ordinal, p.text, p.heading, p.page) for d in docs for p in passages[d.id]],
                kb.index.vectors(ids) if len(ids) else np.zeros((0, 1), dtype=np.float32))

    docs_a, chunks_a, vectors_a = snapshot(a)
    docs_b, chunks_b, vectors_b = snapshot(b)
    difference = float(np.abs(vectors_a - vectors_b).max()) if vectors_a.shape == vectors_b.shape else float("inf")
    same = {"documents": docs_a == docs_b, "chunks": chunks_a == chunks_b, "max_vector_difference": difference}
    same["identical"] = same["documents"] and same["chunks"] and difference <= TOLERANCE
    return same


# the report -------------------------------------------------------------------------------------

def render(r: dict) -> str:
    ingest, cluster, same, passages = r["ingest"], r["cluster"], r["same"], r["config"]["passages"]
    workers = f"{cluster['workers']} workers × {cluster['threads_per_worker']} thread"
    out = [BEGIN, "## 11. Distributed embedding: Dask workers against a local ingest\n",
           f"`python -m bench.distributed` ({r['minutes']:.0f} minutes): {passages:,} MS MARCO passages, one file "
           f"each, ingested by `kb ingest` alone and with `--dask` on a LocalCluster of {workers} on this machine "
           f"(127.0.0.1), each into SQLite in a fresh folder, {r['config']['rounds']} times a side, interleaved (Dask "
           "first in the first round). The model was loaded by the local encoder and on every worker before the "
           f"clock started. Load average (1 / 5 / 15 minutes) {r['load']['start']} at the start, {r['load']['end']} "
           "at the end. Results: docs/benchmarks-distributed.json.\n",
           "| ingest | seconds (median, range) | passages/s | chunks | failed |", "|---|---|---|---|---|"]
    for side, label in (("local", "local"), ("dask", f"Dask, {workers}")):
        row = ingest[side]
        seconds = f"{row['seconds']} ({row['low']}–{row['high']})" if len(row["rounds"]) > 1 else row["seconds"]
        out.append(f"| {label} | {seconds} | {row['passages_per_s']} | {row['chunks']:,} | {row['failed']} |")
    verdict = "met" if r["ratio"] >= 0.9 else "not met"
    out.append(f"\nDask / local: **{r['ratio']:.2f} ×** (target ≥ 0.9 ×, {verdict}: on one machine the cluster "
               "cannot help, and must cost little).")
    if same["identical"]:
        out.append(f"The two collections are identical: the same documents and chunk texts, vectors within 1e-5 "
                   f"(largest difference {same['max_vector_difference']:.1e}).")
    else:
        out.append(f"The two collections differ: documents the same {same['documents']}, chunks the same "
                   f"{same['chunks']}, largest vector difference {same['max_vector_difference']:.1e}.")
    if ingest["local"]["failed"]:
        out.append(f"Both refused the same {ingest['local']['failed']} passage file(s) (issue 20: text that the "
                   "loader takes for binary data).")
    out.append(f"Starting the cluster took {cluster['start_seconds']} s and loading the model on its workers "
               f"{cluster['warm_seconds']} s, neither counted above.\n")
    out.append(END)
    return "\n".join(out) + "\n"


def block(path: Path) -> str | None:
    """The distributed section already in a report, if any."""
    return marked_block(path, BEGIN, END)


def splice(path: Path, section: str) -> None:
    """Put `section` in place of the report's distributed section, or at its end."""
    splice_marked(path, section, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 passages, a minute or two")
    parser.add_argument("--passages", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--rounds", type=int, help="ingests per side (default 2)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only write the section again")
    args = parser.parse_args(argv)
    config = Config.quick() if args.quick else Config()
    config = replace(config, **{k: v for k, v in (("passages", args.passages), ("workers", args.workers),
                                                  ("rounds", args.rounds), ("out", args.out)) if v is not None})
    saved = config.out.with_name("benchmarks-distributed.json") if config.out.name == "benchmarks.md" \
        else config.out.with_suffix(".distributed.json")
    write_section(args.render, args.work, "bench-distributed-", lambda work: run(config, work),
                  saved, config.out, render, splice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
