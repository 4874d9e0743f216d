"""The serving section of docs/benchmarks.md, from one `python -m bench.serving` run's results."""

from __future__ import annotations

from pathlib import Path

from kb.metrics import percentile

from .common import marked_block, splice_marked
from .serving import BEGIN, END, RAW

# (what, target ratio after/before, how it is read off the results); from the serving-path issue
TARGETS = (
    ("first answer after `kb serve` starts, at the large collection", 0.35, "startup"),
    ("query encode p50, one thread", 0.55, "encode"),
    ("kb hybrid in-process p50 at 5k against raw encode + exact FAISS", 1.0, "hybrid_vs_raw"),
    ("HTTP p95 with 4 clients, at the large collection", 0.6, "load4"),
    ("server peak RSS at 5k", 0.6, "rss"),
)


def _med(values) -> float:
    values = [v for v in values if v == v]
    return percentile(values, 50) if values else float("nan")


def _ms(value: float) -> str:
    return "—" if value != value else (f"{value:,.1f}" if value < 100 else f"{value:,.0f}")


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def figures(r: dict) -> dict[str, tuple[float, float]]:
    """(before, after) for each target; for the raw comparison, (raw pipeline, kb hybrid onnx)."""
    first, last = list(r["inprocess"])[0], list(r["inprocess"])[-1]
    load = [k for k in r["http"]["onnx"] if k.startswith("load hybrid, 4 clients") and "per second" not in k]
    return {
        "startup": (_med(r["startup"]["torch"]), _med(r["startup"]["onnx"])),
        "encode": (r["encode"]["torch"]["p50"], r["encode"]["onnx"]["p50"]),
        "hybrid_vs_raw": (r["inprocess"][first][RAW]["p50"], r["inprocess"][first]["kb hybrid, onnx"]["p50"]),
        "load4": ((r["http"]["torch"][load[0]]["p95"], r["http"]["onnx"][load[0]]["p95"]) if load
                  else (float("nan"), float("nan"))),
        "rss": (r["rss"]["torch"], r["rss"]["onnx"]),
        "_last": last,
    }


def render(r: dict) -> str:
    f = figures(r)
    c = r["config"]
    out = [BEGIN, "## 9. Serving path: torch before, ONNX Runtime after\n",
           f"`python -m bench.serving` ({r['minutes']:.0f} minutes; the same machine, collections and queries for "
           "both sides, interleaved query by query in-process and round by round for servers). **before** is kb "
           "with `KB_QUERY_ENCODER=torch KB_BATCH_ENCODER=torch` (sentence-transformers on torch, as kb served "
           "until the ONNX change); **after** is the default, ONNX Runtime, with no torch in the process. "
           f"Collections: {', '.join(f'{k} ({v:,} chunks)' for k, v in r['chunks'].items())}. "
           "Results: docs/benchmarks-serving.json.\n"]
    rows = []
    for label, target, key in TARGETS:
        before, after = f[key]
        ratio = after / before if before else float("nan")
        unit = "s" if key == "startup" else ("MB" if key == "rss" else "ms")
        shown = (lambda v: f"{v:.2f}") if unit == "s" else (lambda v: f"{v:,.0f}" if unit == "MB" else _ms(v))
        rows.append([label, f"{shown(before)} {unit}", f"{shown(after)} {unit}", f"{ratio:.2f} ×",
                     f"≤ {target} ×", "met" if ratio <= target else "**not met**"])
    out.append(_table(["target", "before (torch)", "after (onnx)", "after / before", "target", ""], rows))
    out.append("For the in-process target, *before* is the raw pipeline a user would write (sentence-transformers "
               "encode + exact FAISS) and *after* is kb's whole hybrid search on ONNX Runtime.\n")
    errors = r["load_errors"]
    out.append(f"Errors under load: torch {errors['torch']}, onnx {errors['onnx']}. torch's libraries in the "
               f"server's memory map (`/proc/PID/maps`): before {'yes' if r['torch_mapped']['torch'] else 'no'}, "
               f"after {'yes' if r['torch_mapped']['onnx'] else 'no'}.\n")
    out.append("### Encoding\n")
    out.append(_table(["", "torch", "onnx", "onnx / torch"], [
        ["one query, one thread: p50 ms", _ms(r["encode"]["torch"]["p50"]), _ms(r["encode"]["onnx"]["p50"]),
         f"{r['encode']['onnx']['p50'] / r['encode']['torch']['p50']:.2f} ×"],
        ["one query, one thread: p95 ms", _ms(r["encode"]["torch"]["p95"]), _ms(r["encode"]["onnx"]["p95"]),
         f"{r['encode']['onnx']['p95'] / r['encode']['torch']['p95']:.2f} ×"],
        [f"{c['batch_texts']} passages in batches of 16, every core: passages/s (median of "
         f"{len(r['batch']['torch'])}, each in its own process)", f"{_med(r['batch']['torch']):.1f}",
         f"{_med(r['batch']['onnx']):.1f}", f"{_med(r['batch']['onnx']) / _med(r['batch']['torch']):.2f} ×"],
    ]))
    out.append("### In-process search\n")
    for label, systems in r["inprocess"].items():
        raw = systems[RAW]["p50"]
        rows = [[name, _ms(v["p50"]), _ms(v["p95"]), f"{v['p50'] / raw:.2f} ×"] for name, v in systems.items()]
        out.append(f"{label}, {systems[RAW]['n']} queries each (kb's query cache emptied before each search; "
                   "FAISS on one thread):\n\n" + _table(["system", "p50 ms", "p95 ms", "p50 vs raw"], rows))
    out.append(f"### Server ({f['_last']})\n")
    rows = [["first answer after start, s (median of "
             f"{len(r['startup']['torch'])})", f"{_med(r['startup']['torch']):.2f}", f"{_med(r['startup']['onnx']):.2f}"]]
    for key in r["http"]["torch"]:
        before, after = r["http"]["torch"][key], r["http"]["onnx"][key]
        if isinstance(before, dict):
            rows.append([f"{key}: p50 / p95 ms", f"{_ms(before['p50'])} / {_ms(before['p95'])}",
                         f"{_ms(after['p50'])} / {_ms(after['p95'])}"])
        else:
            rows.append([key, f"{before:.1f}", f"{after:.1f}"])
    rows.append([f"peak RSS at {list(r['chunks'])[0]}, MB", f"{r['rss']['torch']:,.0f}", f"{r['rss']['onnx']:,.0f}"])
    out.append(_table(["", "before (torch)", "after (onnx)"], rows))
    out.append("Peak RSS (VmHWM) counts the database pages each SQLite connection reads through its memory map "
               "(`PRAGMA mmap_size`), once per connection (the server has one per request thread): that is the "
               "kernel's shared page cache, not memory of the process's own. Before kb read through a memory map, "
               "the same measurement gave 595 MB on torch and 268 MB on ONNX Runtime.\n")
    if r["eval"]:
        out.append("### Retrieval quality is unchanged\n")
        rows = []
        for name in ("msmarco", "hct"):
            if f"{name} torch" in r["eval"]:
                a, b = r["eval"][f"{name} torch"], r["eval"][f"{name} onnx"]
                rows.append([f"`kb eval` {name}, hybrid nDCG@10", f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}"])
        out.append("Each side embedded the collection and answered the queries with its own encoders, in its own "
                   "data folder" + (f" ({r['eval_note']})" if r.get("eval_note") else "") + ":\n\n"
                   + _table(["", "torch", "onnx", "difference"], rows))
    out.append(END)
    return "\n".join(out) + "\n"


def block(path: Path) -> str | None:
    """The serving section already in a report, if any."""
    return marked_block(path, BEGIN, END)


def splice(path: Path, section: str) -> None:
    """Put `section` in place of the report's serving section, or at its end."""
    splice_marked(path, section, BEGIN, END)
