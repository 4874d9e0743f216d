"""`python -m bench.serving [--quick]`: the serving path before (torch) and after (ONNX Runtime),
side by side in one run.

Both sides run on the same machine, the same collections and the same queries, interleaved query
by query (in-process) or round by round (servers), so a busy moment falls on both alike.
"before" is kb with `KB_QUERY_ENCODER=torch KB_BATCH_ENCODER=torch` (sentence-transformers, as kb
served until this change); "after" is the default, ONNX Runtime. The section it writes into
docs/benchmarks.md sits between markers, so the full benchmark's report keeps it. Nothing is
asserted about timings: the report states each target and whether this run met it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .data import ROOT  # noqa: E402

BEGIN, END = "<!-- serving:begin -->", "<!-- serving:end -->"
SIDES = {"torch": {"KB_QUERY_ENCODER": "torch", "KB_BATCH_ENCODER": "torch"},
         "onnx": {"KB_QUERY_ENCODER": "onnx", "KB_BATCH_ENCODER": "onnx"}}
RAW = "raw sentence-transformers encode + exact FAISS"


@dataclass(frozen=True)
class Config:
    passages: int = 5000  # MS MARCO passages ingested: the 5k collection
    scale: int = 100_000  # generated chunks beside it (0: none)
    startup_rounds: int = 3
    queries: int = 200  # in-process, per collection
    encode_queries: int = 200
    http_queries: int = 100  # one client, per side
    load_clients: tuple[int, ...] = (1, 4)
    load_seconds: float = 20.0
    batch_texts: int = 512
    batch_rounds: int = 3
    eval: bool = True  # kb eval on msmarco and bench/hct, each side in its own data folder
    out: Path = ROOT / "docs" / "benchmarks.md"

    @classmethod
    def quick(cls) -> "Config":
        return cls(passages=60, scale=0, startup_rounds=1, queries=20, encode_queries=20, http_queries=10,
                   load_seconds=2.0, batch_texts=32, batch_rounds=1, eval=False,
                   out=ROOT / "data" / "bench" / "serving-quick.md")


@dataclass
class Results:
    config: dict
    machine: dict
    encode: dict = field(default_factory=dict)  # side -> Latency of one query, one thread
    batch: dict = field(default_factory=dict)  # side -> passages/s per round
    inprocess: dict = field(default_factory=dict)  # collection label -> system -> Latency
    startup: dict = field(default_factory=dict)  # side -> seconds per round
    http: dict = field(default_factory=dict)  # side -> {"1 client": Latency, ...}
    load_errors: dict = field(default_factory=dict)  # side -> errors over every load level
    rss: dict = field(default_factory=dict)  # side -> peak RSS MB at the 5k collection
    torch_mapped: dict = field(default_factory=dict)  # side -> whether the server mapped torch's libraries
    eval: dict = field(default_factory=dict)  # "msmarco torch" -> nDCG@10 ...
    chunks: dict = field(default_factory=dict)  # collection label -> chunk count
    minutes: float = 0.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def embedder(side: str, cache: Path):
    from kb.embed import Embedder

    env = SIDES[side]
    return Embedder(query_encoder=env["KB_QUERY_ENCODER"], batch_encoder=env["KB_BATCH_ENCODER"], cache_dir=cache)


def run(config: Config, work: Path) -> dict:
    from kb.collection import KnowledgeBase
    from kb.settings import Settings

    from . import data, latency, synth
    from .common import Latency, machine
    from .run import Queries, collection_arrays, http_single
    from .run import _plain as plain_data
    from .server import Server, load

    began = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("KB_MODEL_CACHE") or work / "models")
    shared = {"KB_MODEL_CACHE": str(cache)}  # every server and child process uses one export
    results = Results(asdict(config), machine())
    sides = {side: embedder(side, cache) for side in SIDES}
    sides["onnx"].warm()
    sides["torch"].warm()  # torch on one thread for queries, as kb serve sets it
    queries = Queries([r["text"] for r in data.passages(max(config.passages, 2000))], 6000)

    log("query encode, one thread, side by side")
    encoders = {side: sides[side].query_encoder for side in SIDES}
    millis = {side: [] for side in SIDES}
    for n, text in enumerate(queries.take(config.encode_queries)):
        for side in (list(SIDES) if n % 2 else list(SIDES)[::-1]):
            started = time.perf_counter()
            encoders[side].encode_one(text)
            millis[side].append((time.perf_counter() - started) * 1000)
    results.encode = {side: Latency.of(v[5:]) for side, v in millis.items()}

    log(f"batch encode throughput, {config.batch_texts} passages, each side in its own process")
    texts = [r["text"] for r in data.passages(config.batch_texts)]
    source = work / "batch.json"
    source.write_text(json.dumps(texts))
    results.batch = {side: [] for side in SIDES}
    for r in range(config.batch_rounds):
        for side in (list(SIDES) if r % 2 else list(SIDES)[::-1]):
            done = subprocess.run([sys.executable, "-m", "bench.serving", "--batch-side", side, str(source)],
                                  capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, **shared})
            results.batch[side].append(float(done.stdout.strip().splitlines()[-1]))

    log(f"ingest {config.passages} passages (ONNX) for the 5k collection")
    small = work / "small"
    records = data.passages(config.passages)
    data.write_passages(records, work / "passages")
    from ingest.pipeline import ingest_paths

    kb = KnowledgeBase.open(Settings(data_dir=small, model_cache=cache), sides["onnx"])
    ingest_paths(kb, [work / "passages"])
    kb.close()
    collections = [(f"{config.passages:,} passages", small)]
    _, vectors, chunk_texts = collection_arrays(small, sides["onnx"])
    if config.scale:
        log(f"building {config.scale:,} generated chunks")
        built = synth.build(work / "large", config.scale, vectors, chunk_texts, Settings(model_cache=cache))
        collections.append((f"{config.scale:,} generated chunks", built.data_dir))
        del built

    raw_model = sides["torch"].model
    raw = latency.raw_encoder(raw_model)
    for label, folder in collections:
        log(f"{label}: in-process hybrid and dense, both sides and the raw pipeline")
        kbs = {side: KnowledgeBase.open(Settings(data_dir=folder, model_cache=cache), sides[side]) for side in SIDES}
        ids, vectors, _ = collection_arrays(folder, sides["onnx"])
        results.chunks[label] = len(ids)
        from kb.search import Searcher

        runs = {}
        for side, kbase in kbs.items():
            kbase.refresh()
            searcher = Searcher(kbase)
            for mode in ("hybrid", "dense"):
                runs[f"kb {mode}, {side}"] = _search(searcher, kbase, mode)
        runs[RAW] = partial(_raw_search, latency.exact_index(ids, vectors), raw)
        results.inprocess[label] = latency.measure(runs, queries.take(config.queries))
        for kbase in kbs.values():
            kbase.close()
        del runs, vectors  # the exact index goes with the raw pipeline's closure
    del raw_model

    large = collections[-1][1]
    log(f"{collections[-1][0]}: start-up to first answer, {config.startup_rounds} rounds per side")
    results.startup = {side: [] for side in SIDES}
    for r in range(config.startup_rounds):
        for side in (list(SIDES) if r % 2 else list(SIDES)[::-1]):
            with Server(large, env={**SIDES[side], **shared}, log=work / f"serve-{side}.log") as server:
                results.startup[side].append(server.start(probe=queries.take(1)[0]))

    log(f"{collections[-1][0]}: HTTP, 1 client, then {config.load_clients} clients under load")
    results.http = {side: {} for side in SIDES}
    results.load_errors = {side: 0 for side in SIDES}
    servers = {side: Server(large, env={**SIDES[side], **shared}, log=work / f"serve-{side}.log") for side in SIDES}
    try:
        for server in servers.values():
            server.start(probe=queries.take(1)[0])
        for n, side in enumerate(SIDES):
            single = http_single(servers[side].port, queries.take(2 * config.http_queries))
            results.http[side]["HTTP hybrid, 1 client"] = single["HTTP hybrid"]
            results.http[side]["HTTP dense, 1 client"] = single["HTTP dense"]
        for level in config.load_clients:
            for side in (list(SIDES) if level % 2 else list(SIDES)[::-1]):
                cap = max(40, int(level * config.load_seconds * 40))
                result = load(servers[side].port, queries.take(cap), level, config.load_seconds, max_requests=cap)
                results.http[side][f"load hybrid, {level} clients"] = result.latency
                results.http[side][f"load hybrid, {level} clients, per second"] = result.per_second
                results.load_errors[side] += result.errors
    finally:
        for server in servers.values():
            server.stop()

    log(f"{collections[0][0]}: server peak RSS after {config.http_queries} searches, and torch in its memory map")
    for side in SIDES:
        with Server(small, env={**SIDES[side], **shared}, log=work / f"serve-{side}.log") as server:
            server.start(probe=queries.take(1)[0])
            http_single(server.port, queries.take(config.http_queries))
            results.rss[side] = server.peak_rss_mb()
            results.torch_mapped[side] = torch_mapped(server.process.pid)

    if config.eval:
        for name, folder in (("msmarco", ROOT.parent / "shared" / "eval" / "msmarco"), ("hct", ROOT / "bench" / "hct")):
            if not (folder / "corpus.jsonl").exists():
                continue
            for side in SIDES:
                log(f"kb eval {name}, {side}")
                done = subprocess.run([sys.executable, "-m", "cli", "--data", str(work / f"eval-{side}"), "eval",
                                       str(folder), "--json"], capture_output=True, text=True, cwd=ROOT,
                                      env={**os.environ, **SIDES[side], **shared}, check=True)
                results.eval[f"{name} {side}"] = json.loads(done.stdout.strip().splitlines()[-1])["ndcg@10"]
    results.minutes = (time.perf_counter() - began) / 60
    return plain_data(asdict(results))


def _search(searcher, kbase, mode: str):
    from .latency import forget_queries

    def run(query: str):
        forget_queries(kbase.embedder)
        return searcher.search(query, k=10, mode=mode)
    return run


def _raw_search(exact, encode, query: str):
    return exact.search(encode(query)[None], 10)


def torch_mapped(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "libtorch" in maps


def batch_side(side: str, source: Path) -> float:
    """Passages per second for one side's batch encoder, in a process of its own (torch's and
    ONNX Runtime's thread pools would otherwise spin against each other)."""
    texts = json.loads(source.read_text())
    cache = Path(os.environ.get("KB_MODEL_CACHE", ROOT / ".cache" / "models"))
    encoder = embedder(side, cache)
    encoder.encode(texts[:16])  # load and warm up
    started = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes")
    parser.add_argument("--passages", type=int)
    parser.add_argument("--scale", type=int, help="generated chunks beside the ingested collection (0: none)")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only write the section again")
    parser.add_argument("--batch-side", nargs=2, metavar=("SIDE", "TEXTS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_side:
        print(batch_side(args.batch_side[0], Path(args.batch_side[1])))
        return 0
    config = Config.quick() if args.quick else Config()
    changes = {k: v for k, v in (("passages", args.passages), ("scale", args.scale), ("out", args.out)) if v is not None}
    if args.no_eval:
        changes["eval"] = False
    config = replace(config, **changes)
    from .serving_report import render, splice

    saved = config.out.with_name("benchmarks-serving.json") if config.out.name == "benchmarks.md" \
        else config.out.with_suffix(".json")
    from .common import write_section

    write_section(args.render, args.work, "bench-serving-", lambda work: run(config, work), saved, config.out,
                  render, splice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
