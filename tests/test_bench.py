"""The benchmark scripts keep working: the quick benchmark at tiny sizes, every section once.

No timing is asserted here (the machine is shared and noisy); docs/benchmarks.md holds the figures.
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.model, pytest.mark.bench]

SECTIONS = ("## Targets", "## 1. Ingest throughput", "## 2. Re-ingest", "## 3. Query latency in-process",
            "## 4. Query latency over HTTP", "## 5. Under load", "## 6. Memory and start-up",
            "## 7. Approximate index", "## 8. Tuning")


def test_quick_benchmark_runs_at_tiny_sizes(tmp_path, model, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is run from the checkout, not installed
    from bench.__main__ import main

    out = tmp_path / "benchmarks.md"
    argv = ["--quick", "--passages", "12", "--scales", "", "--corpus-rounds", "0", "--queries", "6",
            "--load-seconds", "0.5", "--no-txtai", "--work", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0
    report = out.read_text()
    for heading in SECTIONS:
        assert heading in report, heading
    assert "no errors under load" in report and "| 0 errors in" in report
    assert (tmp_path / "benchmarks.json").exists()


def test_serving_benchmark_runs_both_sides_at_tiny_sizes(tmp_path, model, monkeypatch):
    """torch before, ONNX after: every figure of the serving section is there for both sides."""
    monkeypatch.syspath_prepend(str(ROOT))
    from dataclasses import replace

    from bench.serving import Config, run
    from bench.serving_report import render, splice

    config = replace(Config.quick(), passages=12, queries=8, encode_queries=8, http_queries=4, load_seconds=0.5,
                     load_clients=(4,), batch_texts=16)
    results = run(config, tmp_path / "work")
    assert sorted(results["startup"]) == ["onnx", "torch"] and results["load_errors"] == {"torch": 0, "onnx": 0}
    assert results["torch_mapped"] == {"torch": True, "onnx": False}
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nearlier sections\n")
    splice(out, render(results))
    splice(out, render(results))  # a second run replaces the section instead of adding another
    report = out.read_text()
    assert report.startswith("# Benchmarks") and report.count("## 9. Serving path") == 1
    for target in ("first answer after `kb serve` starts", "query encode p50", "HTTP p95 with 4 clients",
                   "server peak RSS at 5k"):
        assert target in report


def test_backends_benchmark_runs_both_backends_at_tiny_sizes(tmp_path, model, monkeypatch, postgres_server):
    """SQLite and PostgreSQL side by side: ingest, search at both sizes and disk, for each backend;
    `python -m bench` keeps the section when it writes the report again."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.backends import Config, render, run, splice

    config = Config(passages=12, scales=(300,), queries=8, pg_hnsw_threshold=100, out=tmp_path / "benchmarks.md")
    results = run(config, tmp_path / "work", postgres_server.url)
    assert set(results["ingest"]) == {"sqlite", "postgresql"}
    assert results["ingest"]["sqlite"]["chunks"] == results["ingest"]["postgresql"]["chunks"] > 0
    for label, table in results["latency"].items():
        assert set(table) == {f"{mode}, {backend}" for mode in ("dense", "keyword", "hybrid")
                              for backend in ("sqlite", "postgresql")}, label
        assert all(disk > 0 for disk in results["disk_mb"][label].values())
        cpu = results["cpu"][label]
        assert set(cpu) == set(table) and all(cpu[k]["process_ms"] > 0 for k in cpu)
        assert sum(cpu[f"{mode}, postgresql"]["server_ms"] for mode in ("dense", "keyword", "hybrid")) > 0
    recall = results["recall"]["300 generated chunks"]  # PostgreSQL's HNSW against exact search
    assert set(recall) == {f"{mode}, postgresql" for mode in ("dense", "keyword", "hybrid")}
    assert all(0.5 <= share <= 1 for share in recall.values()), recall
    again = run(dataclasses.replace(config, resume=True), tmp_path / "work", postgres_server.url)  # the collection reused
    assert again["copy_seconds"] == {} and set(again["recall"]) == set(results["recall"])
    out = config.out
    out.write_text("# Benchmarks\n\nearlier sections\n")
    splice(out, render(results))
    splice(out, render(results))  # a second run replaces the section
    report = out.read_text()
    assert report.startswith("# Benchmarks") and report.count("## 10. Backends") == 1
    assert "PostgreSQL / SQLite" in report and "Recall@10 against exact search" in report
    assert "searches/s per core" in report
