"""`python -m bench [--quick]`: every benchmark section in one run, then the report.

The full run (about 30-40 minutes on 2 cores) writes docs/benchmarks.md; `--quick` (under two
minutes) runs every section at small sizes and writes data/bench/benchmarks-quick.md. Nothing
is asserted about timings: the report states each target and whether this run met it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .data import ROOT  # noqa: E402


@dataclass(frozen=True)
class Config:
    passages: int = 5000  # MS MARCO passages ingested (and the first latency scale)
    ingest_rounds: int = 2
    txtai_ingest_rounds: int = 1  # txtai's index of 5,000 passages takes as long as raw encode
    corpus_rounds: int = 3
    scales: tuple[int, ...] = (100_000, 1_000_000)  # generated collections after the ingested one
    load_scale: int = 100_000  # where the load test and the HTTP p95 target run (0: the ingested one)
    queries: int = 200  # per scale, in-process
    queries_large: int = 100  # at 1,000,000 chunks, where exact search alone takes 100+ ms
    http_queries: int = 100  # per mode, one client
    load_levels: tuple[int, ...] = (1, 4, 16)
    load_seconds: float = 15.0
    startup_rounds: int = 3
    encode_texts: int = 256  # texts in the encoder batching comparison
    encode_rounds: int = 2
    variant_passages: int = 400  # passages in the kb ingest variants
    txtai: bool = True
    txtai_max: int = 100_000  # largest collection txtai indexes: at 1M its hybrid build ran past 10 minutes
    out: Path = ROOT / "docs" / "benchmarks.md"
    title: str = "full run"

    @classmethod
    def quick(cls) -> "Config":
        return cls(passages=100, ingest_rounds=1, corpus_rounds=1, scales=(20_000,), load_scale=20_000,
                   queries=30, queries_large=30, http_queries=20, load_seconds=3.0, startup_rounds=1,
                   encode_texts=32, encode_rounds=1, variant_passages=0,
                   out=ROOT / "data" / "bench" / "benchmarks-quick.md", title="quick run")


def parse(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument("--out", type=Path, help="report file (default: docs/benchmarks.md, or "
                                                 "data/bench/benchmarks-quick.md with --quick)")
    parser.add_argument("--passages", type=int, help="MS MARCO passages to ingest")
    parser.add_argument("--scales", help="generated collection sizes, comma-separated (e.g. 100000,1000000); "
                                         "empty: only the ingested collection")
    parser.add_argument("--corpus-rounds", type=int, help="rounds on the sample corpus (0 leaves it out)")
    parser.add_argument("--queries", type=int, help="queries per scale, in-process")
    parser.add_argument("--load-seconds", type=float, help="seconds per load level")
    parser.add_argument("--no-txtai", action="store_true", help="leave txtai out even when installed")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only write the report again from a run's saved results")
    args = parser.parse_args(argv)
    config = Config.quick() if args.quick else Config()
    changes = {}
    if args.out:
        changes["out"] = args.out
    if args.passages:
        changes["passages"] = args.passages
    if args.scales is not None:
        scales = tuple(int(s) for s in args.scales.split(",") if s.strip())
        changes.update(scales=scales, load_scale=min(scales, key=lambda s: abs(s - 100_000)) if scales else 0)
    if args.corpus_rounds is not None:
        changes["corpus_rounds"] = args.corpus_rounds
    if args.queries:
        changes.update(queries=args.queries, queries_large=args.queries, http_queries=max(5, args.queries // 2))
    if args.load_seconds:
        changes["load_seconds"] = args.load_seconds
    if args.no_txtai:
        changes["txtai"] = False
    return replace(config, **changes), args


def main(argv: list[str] | None = None) -> int:
    config, args = parse(argv)
    from .report import render

    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
    else:
        from .common import in_scratch
        from .run import run

        results = in_scratch(args.work, "bench-run-", lambda work: run(config, work))
        saved = config.out.with_suffix(".json")  # beside the report: `--render` writes it again
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1), encoding="utf-8")
    config.out.parent.mkdir(parents=True, exist_ok=True)
    from . import backends
    from .serving_report import block

    # the sections of python -m bench.serving and python -m bench.backends stay until those run again
    kept = [part for part in (block(config.out), backends.block(config.out)) if part]
    config.out.write_text(render(results) + "".join("\n" + part for part in kept), encoding="utf-8")
    print(f"wrote {config.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
