"""docs/benchmarks.md from one run's results (a plain dict, also saved as JSON beside the report)."""

from __future__ import annotations

from kb.metrics import percentile

RAW = "raw encode + exact FAISS"


def render(r: dict) -> str:
    parts = [_header(r), _errors(r), _machine(r), _targets(r), _ingest(r), _reingest(r), _latency(r), _http(r),
             _load(r), _memory(r), _ann(r), _tuning(r), _findings(r)]
    return "\n".join(p for p in parts if p).rstrip() + "\n"


# helpers -------------------------------------------------------------------------------------

def _spread(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "—"
    mid = percentile(values, 50)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _spread_of(v: dict, digits: int = 1) -> str:
    """A saved `Spread` (median, low, high, n)."""
    if not v["n"]:
        return "—"
    if v["n"] == 1:
        return f"{v['median']:,.{digits}f}"
    return f"{v['median']:,.{digits}f} ({v['low']:,.{digits}f}–{v['high']:,.{digits}f})"


def _med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return percentile(values, 50) if values else float("nan")


def _ms(value: float) -> str:
    if value != value:
        return "—"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _percentiles(label: str, latencies: dict) -> str:
    """A table of p50 and p95 per named `Latency`."""
    return _table([label, "p50 ms", "p95 ms"], [[k, _ms(v["p50"]), _ms(v["p95"])] for k, v in latencies.items()])


def _times(x: float) -> str:
    return f"{x:.1f} ×" if x < 10 else f"{x:.0f} ×"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def _scale(r: dict, chunks: int | None = None, kind: str | None = None, first: bool = False) -> dict | None:
    scales = r["scales"]
    if first:
        return scales[0] if scales else None
    for s in scales:
        if (chunks is None or s["chunks"] == chunks) and (kind is None or s["kind"] == kind):
            return s
    return None


def _ingest_ratio(result: dict, reference: str = "raw model.encode") -> tuple[float, list[float]]:
    """kb's chunks/s over raw encode's texts/s: of the medians, and round by round."""
    kb, raw = result["seconds"].get("kb ingest", []), result["seconds"].get(reference, [])
    texts = result["texts"]
    if not kb or not raw:
        return float("nan"), []
    rate = lambda s, n: n / s  # noqa: E731
    paired = [rate(k, result["chunks"]) / rate(w, texts) for k, w in zip(kb, raw)]
    return rate(_med(kb), result["chunks"]) / rate(_med(raw), texts), paired


def _hybrid_ratio(scale: dict | None) -> float:
    if not scale or RAW not in scale["latency"]:
        return float("nan")
    return scale["latency"]["kb hybrid"]["p50"] / scale["latency"][RAW]["p50"]


def _load_at(scale: dict | None, clients: int, key: str = "load") -> dict | None:
    for row in (scale or {}).get(key, []):
        if row["clients"] == clients:
            return row
    return None


# sections ------------------------------------------------------------------------------------

def _header(r: dict) -> str:
    loads = r["loads"]
    busy = ""
    if loads:
        busy = (f"\nThe machine's 1-minute load average, sampled every 5 s through the run, had a median of "
                f"{_med(loads):.1f} and a maximum of {max(loads):.1f} on {r['cores']} cores")
        busy += (" (the benchmark's own work included: ingest and the load test keep both cores busy); "
                 "absolute times move with the machine's load, the side-by-side ratios much less.\n")
    return (f"# Benchmarks\n\nOne {r['config']['title']} of `python -m bench` ({r['minutes']:.0f} minutes, "
            f"{r['date']}). `make bench` reproduces this file; `make bench-quick` runs every section at small "
            "sizes in under two minutes (report in `data/bench/`). The run's figures are kept as JSON beside "
            "this file (`benchmarks.json`; `python -m bench --render docs/benchmarks.json` writes the report "
            "again from them). Medians are given with the min–max over "
            "rounds; every comparison is a ratio of figures measured side by side in this run, in rotating "
            "order (query by query, or round by round), so a busy moment falls on both sides alike. "
            "Nothing here is asserted by the test suite: `tests/test_bench.py` only runs the quick benchmark "
            f"at tiny sizes so the scripts keep working.\n{busy}")


def _errors(r: dict) -> str:
    if not r.get("errors"):
        return ""
    return ("**Sections that failed in this run** (left out below):\n\n"
            + "\n".join(f"- {e}" for e in r["errors"]) + "\n")


def _machine(r: dict) -> str:
    rows = [[k, v] for k, v in r["machine"].items()]
    settings = r["settings"]
    rows.append(["kb settings", f"model {settings['model']}, batch_size {settings['batch_size']}, "
                                f"index {settings['index_kind']} (HNSW above {settings['hnsw_threshold']:,}), "
                                f"candidates {settings['candidates']}, feedback_docs {settings['feedback_docs']}"])
    return "## Machine and versions\n\n" + _table(["", ""], rows)


def _targets(r: dict) -> str:
    rows = []
    ms = next((i for i in r["ingest"] if i["name"] == r.get("passage_set", "MS MARCO")), None)
    if ms:
        ratio, paired = _ingest_ratio(ms)
        own = next((k for k in ms["seconds"] if k.startswith("raw model.encode, batch")), None)
        text = f"{ratio:.2f} × (rounds {min(paired):.2f}–{max(paired):.2f})" if paired else "—"
        if own:
            strict, strict_paired = _ingest_ratio(ms, own)
            text += f"; {strict:.2f} × raw encode at kb's batch size ({own.split(', ')[1].split(' (')[0]})"
            ratio = min(ratio, strict)
        rows.append(["2", f"kb ingest ≥ 0.85 × raw encode ({ms['files']:,} {ms['name']})", text,
                     _met(ratio >= 0.85 if ratio == ratio else None)])
        re = [x / y for x, y in zip(ms["reingest"], ms["seconds"].get("kb ingest", []))]
        rows.append(["3", "re-ingest of the unchanged corpus ≤ 2 % of the first ingest",
                     f"{_med(re):.1%}" if re else "—", _met(_med(re) <= 0.02 if re else None)])
    first = _scale(r, first=True)
    load_scale = _scale(r, r["config"]["load_scale"]) or (first if not r["config"]["scales"] else None)
    for s in (first, load_scale) if load_scale is not first else (first,):
        if s:
            ratio = _hybrid_ratio(s)
            rows.append(["4", f"hybrid p50 in-process ≤ 1.3 × raw (encode + exact FAISS) at {s['chunks']:,}",
                         f"{ratio:.2f} × ({_ms(s['latency']['kb hybrid']['p50'])} vs "
                         f"{_ms(s['latency'][RAW]['p50'])} ms)", _met(ratio <= 1.3)])
    big = next((s for s in r["scales"] if s["chunks"] >= 1_000_000), None)
    if big:
        p50 = big["latency"]["kb hybrid"]["p50"]
        rows.append(["4", f"hybrid p50 ≤ 30 ms at {big['chunks']:,} ({big['kind']} index)", f"{_ms(p50)} ms",
                     _met(p50 <= 30)])
    four = _load_at(load_scale, 4)
    if four:
        rows.append(["4", f"HTTP p95 ≤ 50 ms at {load_scale['chunks']:,}, 4 concurrent clients",
                     f"{_ms(four['latency']['p95'])} ms", _met(four["latency"]["p95"] <= 50)])
    loads = [x for s in r["scales"] for x in s["load"] + s["load_torch_default"]]
    if loads:
        errors = sum(x["errors"] for x in loads)
        rows.append(["5", "no errors under load", f"{errors} errors in {sum(x['requests'] for x in loads):,} "
                                                   "requests", _met(errors == 0)])
    if load_scale and load_scale["startup"]:
        mid = _med(load_scale["startup"])
        rows.append(["6", f"first answer ≤ 5 s after start at {load_scale['chunks']:,}",
                     f"{_spread(load_scale['startup'], 2)} s", _met(mid <= 5)])
    hnsw = next((s for s in r["scales"] if s["ann"]), None)
    if hnsw:
        row = hnsw["ann"][0]
        rows.append(["7", f"approximate recall@10 ≥ 0.95 against exact ({hnsw['chunks']:,})",
                     f"{row['recall_at_10']:.3f}", _met(row["recall_at_10"] >= 0.95)])
    return "## Targets\n\n" + _table(["item", "target", "this run", ""], rows)


def _ingest(r: dict) -> str:
    out = ["## 1. Ingest throughput\n",
           "`kb ingest` (in-process `ingest_paths`: walk, hash, load in the isolated worker, chunk, embed, "
           "store, index) against raw `model.encode` of the very same chunk texts in one call (the model's "
           "limit on this hardware) and txtai's `Embeddings.index` with the same local model folder "
           "(content and hybrid on, as kb stores text and a keyword index). The model is loaded before "
           "timing starts on every side. Rates are chunks (texts) per second, model tokens per second and "
           "source megabytes per second.\n"]
    for result in r["ingest"]:
        texts, chunks = result["texts"], result["chunks"]
        out.append(f"### {result['name']}: {result['files']:,} files, {result['megabytes']:.2f} MB, "
                   f"{chunks:,} chunks, {result['tokens']:,} tokens\n")
        if result.get("failed"):
            out.append(f"kb refused {len(result['failed'])} of the files (the others are measured): "
                       + "; ".join(f"`{f}`" for f in result["failed"][:5]) + ".\n")
        raw = result["seconds"].get("raw model.encode", [])
        rows = []
        for name, seconds in result["seconds"].items():
            n = chunks if name == "kb ingest" else texts
            rates = [n / s for s in seconds]
            paired = [(n / s) / (texts / w) for s, w in zip(seconds, raw)]
            versus = "1.00 × (the reference)" if name == "raw model.encode" else (
                f"{_med(rates) / (texts / _med(raw)):.2f} ×" + (
                    f" (rounds {min(paired):.2f}–{max(paired):.2f})" if len(paired) > 1 else "")) if raw else "—"
            rows.append([name, _spread(seconds, 1), _spread(rates, 1),
                         _spread([result["tokens"] * x / n for x in rates], 0),
                         _spread([result["megabytes"] / s for s in seconds], 3), versus])
        out.append(_table(["", "seconds", "chunks/s", "tokens/s", "MB/s", "rate vs raw encode"], rows))
    return "\n".join(out)


def _reingest(r: dict) -> str:
    rows = []
    for result in r["ingest"]:
        first = result["seconds"].get("kb ingest", [])
        again = result["reingest"]
        rows.append([result["name"], _spread(first, 1), _spread(again, 2),
                     _spread([a / f * 100 for a, f in zip(again, first)], 2) + " %"])
    return ("## 2. Re-ingest of an unchanged corpus\n\nThe same `kb ingest` again into the collection it just "
            "built, paired round by round: every file is read and hashed, found unchanged and skipped.\n\n"
            + _table(["corpus", "first ingest s", "re-ingest s", "re-ingest / first"], rows))


def _latency(r: dict) -> str:
    out = ["## 3. Query latency in-process\n",
           "k = 10, kb defaults (hybrid = dense + BM25 candidates, 100 each, convex fusion, one round of "
           "pseudo-relevance feedback, folding, snippets, facets). Every query is new to kb (its query-vector "
           "cache is emptied before each search; a cache hit is in section 8). \"raw encode + exact FAISS\" "
           "is `model.encode` of the query plus an exact inner-product search of the same vectors; "
           "\"raw hybrid\" adds kb's own BM25 query and convex fusion and nothing else. txtai is given the "
           "same vectors and texts (its hybrid index: BM25 + its FAISS default, IVF above 5,000 vectors). "
           "The larger collections hold generated vectors (see section 7) with real text in the keyword "
           "index.\n"]
    skipped = [s["label"] for s in r["scales"] if r["txtai"] and "txtai hybrid" not in s["latency"]]
    if skipped:
        out[-1] += (f"\ntxtai is left out at {', '.join(skipped)} chunks: building its hybrid index there (vectors "
                    "given) ran past 10 minutes in a trial on this machine, against "
                    + ", ".join(f"{s['build'].get('txtai hybrid index (vectors given) s', float('nan')):.0f} s at "
                                f"{s['label']}" for s in r["scales"] if "txtai hybrid" in s["latency"]
                                and "txtai hybrid index (vectors given) s" in s["build"])
                    + " in this run; the run is bounded to about 40 minutes.\n")
    for s in r["scales"]:
        raw = s["latency"].get(RAW, {}).get("p50")
        rows = [[name, _ms(x["p50"]), _ms(x["p95"]), _ms(x["p99"]),
                 f"{x['p50'] / raw:.2f} ×" if raw else "—"] for name, x in s["latency"].items()]
        n = next(iter(s["latency"].values()))["n"] if s["latency"] else 0
        out.append(f"### {s['label']} chunks, {s['kind']} index, {n} queries\n")
        out.append(_table(["system", "p50 ms", "p95 ms", "p99 ms", "p50 vs raw encode + exact FAISS"], rows))
    rows = [[s["label"]] + [_ms(p["p50"]) for p in s["parts"].values()] for s in r["scales"] if s["parts"]]
    if rows:
        head = ["chunks"] + [f"{name} p50 ms" for name in r["scales"][0]["parts"]]
        out.append("Pieces of one query, measured alone:\n\n" + _table(head, rows))
    for mode in ("hybrid", "dense"):
        scales = [s for s in r["scales"] if mode in s.get("breakdown", {})]
        if not scales:
            continue
        steps = list(scales[0]["breakdown"][mode])
        rows = [[step] + [_ms(s["breakdown"][mode].get(step, float("nan"))) for s in scales] for step in steps]
        out.append(f"Where a kb {mode} search spends its time (mean ms per search, kb's own functions timed "
                   "in place over further new queries):\n\n" + _table(["step"] + [s["label"] for s in scales], rows))
    return "\n".join(out)


def _http(r: dict) -> str:
    rows = []
    for s in r["scales"]:
        for name, x in s["http"].items():
            mode = name.split()[-1]
            inproc = s["latency"].get(f"kb {mode}", {}).get("p50")
            rows.append([s["label"], mode, _ms(x["p50"]), _ms(x["p95"]), _ms(x["p99"]),
                         f"{x['p50'] / inproc:.2f} ×" if inproc else "—"])
    if not rows:
        return ""
    return ("## 4. Query latency over HTTP\n\n`GET /api/search?q=…&k=10&mode=…` against `kb serve` (waitress, "
            "8 threads) on loopback, one client on a keep-alive connection, hybrid and dense alternating; "
            "every query new to the server. Concurrent clients: section 5.\n\n"
            + _table(["chunks", "mode", "p50 ms", "p95 ms", "p99 ms", "p50 vs in-process p50"], rows))


def _load(r: dict) -> str:
    out = []
    for s in r["scales"]:
        if not s["load"]:
            continue
        rows = []
        for key, name in (("load", "kb defaults (KB_QUERY_THREADS=1)"),
                          ("load_torch_default", "KB_QUERY_THREADS=0 (torch's own threads)")):
            for x in s[key]:
                rps = x["requests"] / x["seconds"] if x["seconds"] else 0
                rows.append([name, x["clients"], f"{x['requests']:,}", f"{rps:.1f}", _ms(x["latency"]["p50"]),
                             _ms(x["latency"]["p95"]), _ms(x["latency"]["p99"]), x["errors"]])
        seconds = r["config"]["load_seconds"]
        out.append(f"## 5. Under load\n\n`kb serve` at {s['label']} chunks, hybrid searches, each client on its "
                   f"own keep-alive connection sending its next query as soon as the last is answered, for "
                   f"{seconds:g} s per level (and at most a fixed number of requests); no query repeats. A "
                   "second server with `KB_QUERY_THREADS=0` (torch's default threads per query instead of kb's "
                   "one) ran beside the default one, the two taking turns level by level.\n\n"
                   + _table(["server", "clients", "requests", "requests/s", "p50 ms", "p95 ms", "p99 ms",
                             "errors"], rows))
    return "\n".join(out)


def _memory(r: dict) -> str:
    rows = [[s["label"], s["kind"], f"{s['index_mb']:,.0f}", f"{s['db_mb']:,.0f}",
             f"{s['peak_rss_mb']:,.0f}", _spread(s["startup"], 2), _spread(s.get("imports", []), 2)]
            for s in r["scales"]]
    keys = list(dict.fromkeys(k for s in r["scales"] for k in s["build"]))
    builds = [[s["label"]] + [f"{s['build'][k]:,.1f}" if k in s["build"] else "—" for k in keys]
              for s in r["scales"] if s["build"]]
    out = ("## 6. Memory and start-up\n\nPeak RSS is the server's high-water mark (VmHWM) after the HTTP and "
           "load tests. First answer: from launching `kb serve` to the first 200 from `/api/search` (Python "
           "start, imports, model load, index load, first query), median (min–max) of fresh starts. "
           "The last column is a fresh Python process that only imports sentence-transformers (which "
           "brings torch and transformers), timed just before each start: the floor under the first "
           "answer that kb's own code does not set.\n\n"
           + _table(["chunks", "index", "index on disk MB", "database MB", "server peak RSS MB",
                     "first answer s", "import sentence-transformers s"], rows))
    if builds:
        head = ["chunks"] + keys
        out += ("\nBuilding the generated collections (bulk, through kb's Store and VectorIndex; "
                "not a kb code path users run):\n\n" + _table(head, builds))
    return out


def _ann(r: dict) -> str:
    out = []
    for s in r["scales"]:
        if not s["ann"]:
            continue
        rows = [[a["setting"], f"{a['recall_at_10']:.3f}", _ms(a["approx_ms"]), _ms(a["exact_ms"]),
                 _times(a["exact_ms"] / a["approx_ms"]) if a["approx_ms"] else "—"] for a in s["ann"]]
        note = f" {s['ann_note']}." if s["ann_note"] else ""
        out.append(
            f"## 7. Approximate index\n\nAt {s['chunks']:,} vectors (kb switches from exact to HNSW above "
            f"{r['settings']['hnsw_threshold']:,}).{note} Vectors are shaped like real ones: each is a real "
            "MS MARCO passage "
            "embedding moved by noise drawn from the real embeddings' own covariance, scaled so that it "
            "keeps a median cosine of 0.85 with the embedding it came from, then normalized (uniform random "
            "vectors would be HNSW's worst case and say nothing about real use). Queries are real questions "
            "and passage phrases, encoded by the model. Recall@10 is the share of exact "
            "search's top 10 that the index returns; times are per query, the exact search timed "
            "alternately with kb's own search.\n\n"
            + _table(["search", "recall@10", "approximate ms", "exact ms", "speed-up"], rows))
    return "\n".join(out)


def _tuning(r: dict) -> str:
    out = ["## 8. Tuning\n"]
    if r["encode"]:
        rows = [[name, _spread_of(v)] for name, v in r["encode"].items()]
        out.append("### Encoder: texts per call, batch size, threads\n\nThe first MS MARCO chunk texts in file "
                   "order, encoded in the ways below (rounds in rotating order). kb's ingest used to encode one "
                   "ingest batch of 32 files at a time; it now collects up to 256 files (or 4 MB of text) per "
                   "ingest batch and encodes up to 1,024 chunk texts per call, which sentence-transformers sorts "
                   "by length, so its batches carry less padding; and its encoder batch is 16.\n\n"
                   + _table(["variant", "texts/s"], rows))
    if r.get("ingest_variants"):
        v = r["ingest_variants"]
        raw = next((x for k, x in v.items() if k.startswith("raw")), None)
        rows = [[k, f"{x:.1f}", f"{raw / x:.2f} ×" if raw else "—"] for k, x in v.items()]
        out.append(f"### kb ingest as shipped and as it was before these measurements\n\nThe first "
                   f"{r['variant_files']:,} MS MARCO passages, one round each, in this order; the variants "
                   "patch the ingest batch size (`ingest.pipeline.BATCH_DOCS`) and `KB_BATCH_SIZE` for the "
                   "run only. The last column is speed relative to raw encode at batch 32 (higher is faster).\n\n" + _table(["", "seconds", "speed vs raw encode"], rows))
    if r["query_threads"]:
        out.append("### Encoding one query: torch threads\n\n" + _percentiles("threads", r["query_threads"]))
    for s in r["scales"]:
        if s["cache"]:
            out.append(f"### Query-vector cache ({s['label']} chunks, kb hybrid)\n\n" + _percentiles("", s["cache"]))
    for s in r["scales"]:
        if s["fts"]:
            rows = [["kb's keyword_search, as shipped" if n == 0 else k, _ms(v[0]["p50"]), _ms(v[0]["p95"]),
                     f"{v[1]:.3f}"] for n, (k, v) in enumerate(s["fts"].items())]
            out.append(f"### FTS5 query shape ({s['label']} chunks, keyword side of kb's queries, top 100)\n\n"
                       "The first row is kb's `keyword_search` as this run shipped it (FTS5's own top 4 × k, then "
                       "their documents checked against the filters in SQL; a search also hands it the admitted "
                       "ids, which skips that SQL); the others are the shapes it was chosen against.\n\n"
                       + _table(["query", "p50 ms", "p95 ms", "same top 100 as kb"], rows))
    for s in r["scales"]:
        if s["faiss_threads"]:
            out.append(f"### Exact FAISS search, one query: OpenMP threads ({s['label']} chunks)\n\n"
                       + _percentiles("threads", s["faiss_threads"]))
    for s in r["scales"]:
        if s["mmap"]:
            rows = []
            for mode, x in s["mmap"].items():
                if "error" in x:
                    rows.append([mode, x["error"], "", ""])
                else:
                    rows.append([mode, f"{x['load_s']:.2f}", _ms(x["search_ms"]), f"{x['peak_rss_mb']:,.0f}"])
            out.append(f"### Loading the saved index: read against memory-mapped ({s['label']} chunks, "
                       "fresh process each)\n\n" + _table(["load", "seconds", "first 20 searches, ms each",
                                                           "peak RSS MB"], rows))
    out.append("### Faster encoder path\n\nNot adopted. An int8 ONNX build of the model was measured slower "
               "than PyTorch on this 2-core machine (reference measurement in the issue), and no ONNX "
               "runtime ships with kb; an encoder path would only be added where it is measured faster here, "
               "keeps embeddings within cosine 0.99 of PyTorch's and leaves `kb eval` unchanged. PyTorch's "
               "own dynamic int8 quantization of the linear layers, tried outside this run on the 50 msmarco "
               "queries (one thread, side by side), encoded a query in 5.6 ms against 12.1 ms but its vectors "
               "kept only cosine 0.95 on average (0.91 at worst) with the float ones the collection is "
               "embedded with, so it fails the 0.99 bar.\n")
    return "\n".join(out)


def _findings(r: dict) -> str:
    from .findings import findings

    return findings(r)
