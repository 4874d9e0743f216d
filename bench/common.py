"""Timing helpers, summaries and the machine description shared by every benchmark section.

The machine is shared and noisy, so every comparison is run side by side: `interleaved` rotates
the order of the things compared in each round, and a comparison is reported as a ratio of
figures from the same run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from kb.metrics import percentile


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements with their range."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(percentile(values, 50), min(values), max(values), len(values))

    def show(self, digits: int = 1) -> str:
        if not self.n:
            return "—"
        if self.n == 1:
            return f"{self.median:,.{digits}f}"
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}–{self.high:,.{digits}f})"


@dataclass(frozen=True)
class Latency:
    """Percentiles of per-request times in milliseconds."""

    p50: float
    p95: float
    p99: float
    n: int

    @classmethod
    def of(cls, millis: list[float]) -> "Latency":
        return cls(percentile(millis, 50), percentile(millis, 95), percentile(millis, 99), len(millis))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f} ×" if b else "—"


def interleaved(rounds: int, runs: dict[str, Callable[[], float]],
                limits: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Run each callable `rounds` times (or its `limits` entry, if smaller), rotating which goes
    first; each call returns one figure."""
    names = list(runs)
    limits = limits or {}
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if r < limits.get(name, rounds):
                out[name].append(runs[name]())
    return out


def in_scratch(work: Path | None, prefix: str, job: Callable[[Path], dict]) -> dict:
    """`job(folder)` in `work`, or in a temporary folder removed afterwards."""
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return job(folder)
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)


class Clock:
    """Wall time of a block: `with Clock() as c: ...; c.seconds`."""

    def __enter__(self) -> "Clock":
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def has(package: str) -> bool:
    return version(package) != "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "—"


def machine() -> dict[str, str]:
    """What the figures were measured on: hardware, software versions and how busy it was."""
    import torch

    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores "
               f"({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} usable)",
        "memory": f"{memory_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "torch": f"{version('torch')} ({torch.get_num_threads()} intra-op threads)",
        "sentence-transformers": version("sentence-transformers"),
        "transformers": version("transformers"),
        "faiss-cpu": version("faiss-cpu"),
        "numpy": version("numpy"),
        "SQLite": sqlite3.sqlite_version,
        "waitress": version("waitress"),
        "txtai": version("txtai"),
        "kb": version("kb"),
    }


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set size (VmHWM), in MB; Linux only."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def folder_mb(path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 1024 ** 2


def write_section(rendered_from: Path | None, work: Path | None, prefix: str, job: Callable[[Path], dict],
                  saved: Path, out: Path, render: Callable[[dict], str], splice: Callable[[Path, str], None]) -> None:
    """A benchmark script's last step: its results (from the JSON `rendered_from`, or `job` run in
    `work` or a scratch folder, then kept as JSON in `saved`), rendered into its section of `out`."""
    if rendered_from:
        results = json.loads(rendered_from.read_text())
    else:
        results = in_scratch(work, prefix, job)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    splice(out, render(results))
    print(f"wrote {out}", file=sys.stderr)


def marked_block(path: Path, begin: str, end: str) -> str | None:
    """The section between `begin` and `end` markers already in a report, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return text[text.index(begin):text.index(end) + len(end)] + "\n" if begin in text and end in text else None


def splice_marked(path: Path, section: str, begin: str, end: str) -> None:
    """Put `section` in place of the report's section between those markers, or at its end."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = marked_block(path, begin, end)
    text = text.replace(old, section) if old else text.rstrip() + ("\n\n" if text else "") + section
    path.write_text(text, encoding="utf-8")
