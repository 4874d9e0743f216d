"""Crash safety and concurrency with the real model, real SQLite, real FAISS and real processes.

- Ingests (and the removals of `--prune`) are killed with SIGKILL at seeded random moments,
  aimed at each phase of a write; the store must open clean, every document be wholly present
  or absent, the index agree with the store (repaired on open), and a second ingest finish the job.
- Searches through the CLI and HTTP run while another process ingests and removes; the running
  server sees the new documents without a restart; a second writer waits or fails clearly.

KB_CRASH_RUNS sets the number of kills (default 20). Figures go to artifacts/reliability/.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, FakeEmbedder, make_docx, make_pdf
from ingest.pipeline import ingest_paths
from kb.collection import KnowledgeBase
from kb.errors import Busy
from kb.index import VectorIndex
from kb.settings import Settings
from kb.storage.keyword import LEVEL
from support.db import rows as sql_rows

pytestmark = pytest.mark.model

RUNS = int(os.environ.get("KB_CRASH_RUNS", "20"))
SEED = int(os.environ.get("KB_CRASH_SEED", "7"))
REPORTS = ROOT / "artifacts" / "reliability"
WORDS = ("partnership volunteers council health community learning grant trust residents neighbourhood "
         "listening wellbeing charity funding phase evaluation housing loneliness youth carers mental "
         "advice food transport parks libraries schools doctors nurses pharmacy employment debt "
         "culture sport walking gardens music faith elders families refugees disability digital").split()


# a fork server running real `kb` CLI processes ----------------------------------------------------

class Launcher:
    """Talks to tests/support/launcher.py: each command a separate process, killable, its phases traced."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               "OMP_NUM_THREADS": "1"}  # several processes share few cores here: no thread oversubscription
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "launcher.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self._lock = threading.Lock()
        assert "ready" in json.loads(self.proc.stdout.readline())

    def _ask(self, request: dict) -> dict:
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def start(self, argv: list[str], out: Path, trace: Path | None = None) -> int:
        return self._ask({"run": [str(a) for a in argv], "out": str(out), "trace": str(trace) if trace else None})["pid"]

    def wait(self, pid: int) -> int:
        return self._ask({"wait": pid})["status"]

    def run(self, argv: list[str], out: Path) -> tuple[int, str]:
        status = self.wait(self.start(argv, out))
        return status, out.read_text()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def launcher():
    server = Launcher()
    yield server
    server.close()


def read_trace(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(float(t), name) for t, name in (line.split() for line in lines if line.count(" ") == 1)]


# the folders ingested ------------------------------------------------------------------------------

def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_version_1(folder: Path) -> None:
    """36 files in five formats: two batches of an ingest."""
    rng = random.Random(1000)
    folder.mkdir(parents=True)
    for i in range(32):
        text = f"# Note {i}: {rng.choice(WORDS)}\n\n{paragraph(rng, 25)}\n\n{paragraph(rng, 15)}\n"
        (folder / f"note-{i:02d}.md").write_text(text)
    (folder / "report.pdf").write_bytes(make_pdf([[("h1", "Findings"), ("p", paragraph(rng, 60))],
                                                  [("h1", "Next steps"), ("p", paragraph(rng, 50))]]))
    (folder / "profile.docx").write_bytes(make_docx([("h1", "Area profile"), ("p", paragraph(rng, 50))]))
    (folder / "news.html").write_text(f"<html><head><title>News</title></head><body><main><h1>News</h1>"
                                      f"<p>{paragraph(rng, 50)}</p></main></body></html>")
    (folder / "memo.txt").write_bytes(f"Caf\u00e9 memo\n\n{paragraph(rng, 40)}\n".encode("cp1252"))


def make_version_2(folder: Path) -> None:
    """Version 2 of the same folder: 8 files changed, 4 gone, 4 new."""
    for i in range(32):
        path = folder / f"note-{i:02d}.md"
        if i % 8 == 7:
            path.unlink()
        elif i % 4 == 1:
            path.write_text(path.read_text() + f"\n## Update\n\n{paragraph(random.Random(i), 25)}\n")
    for i in range(4):
        (folder / f"new-{i}.md").write_text(f"# New {i}\n\n{paragraph(random.Random(50 + i), 40)}\n")


def snapshot(data: Path) -> dict[str, list[str]]:
    """Each document's chunk texts, by file name."""
    conn = sqlite3.connect(data / "kb.sqlite3")
    rows = conn.execute("SELECT d.original_name, c.text FROM documents d JOIN chunks c ON c.doc_id = d.id "
                        "ORDER BY d.id, c.ordinal").fetchall()
    conn.close()
    out: dict[str, list[str]] = {}
    for name, text in rows:
        out.setdefault(name, []).append(text)
    return out


def sqlite_checks(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
        orphans = conn.execute("SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)")
        assert orphans.fetchone()[0] == 0
    finally:
        conn.close()


def index_lags(data: Path) -> bool:
    """Before any open: does the saved index miss the store's last commit?"""
    conn = sqlite3.connect(data / "kb.sqlite3")
    generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    conn.close()
    saved = VectorIndex.load(data / "index")
    return saved is None or saved[1].generation != generation


# crash safety ----------------------------------------------------------------------------------------

TARGETS = {  # phase aimed at -> version ingested (1: into an empty folder, 2: update with --prune)
    "start": 1, "load": 1, "embed": 1, "write": 1, "commit": 1, "committed": 1, "save": 1,
    "update-embed": 2, "update-write": 2, "update-save": 2, "update-remove": 2, "update-start": 2,
}


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory, launcher):
    """The folders, and a clean traced reference run of each version (chunk texts and timings)."""
    root = tmp_path_factory.mktemp("crash")
    setup = {"fresh": root / "fresh", "update": root / "update", "baseline": root / "baseline"}
    write_version_1(setup["fresh"])
    write_version_1(setup["update"])
    status, out = launcher.run(["--data", setup["baseline"], "ingest", setup["update"]], root / "baseline.out")
    assert status == 0, out
    make_version_2(setup["update"])
    for version, folder, extra in ((1, setup["fresh"], []), (2, setup["update"], ["--prune"])):
        data, trace = root / f"clean-{version}", root / f"trace-{version}"
        if version == 2:
            shutil.copytree(setup["baseline"], data)
        pid = launcher.start(["--data", data, "ingest", folder, *extra], root / f"clean-{version}.out", trace)
        assert launcher.wait(pid) == 0, (root / f"clean-{version}.out").read_text()
        setup[version] = (snapshot(data), read_trace(trace))
    return setup


def aim(rng: random.Random, target: str, trace: list[tuple[float, str]]) -> tuple[str, int, float]:
    """(marker, occurrence, delay after it): a random moment inside the target phase."""
    phase = target.removeprefix("update-")
    times = [t for t, name in trace if name == phase]
    if phase == "start" or not times:
        return "start", 1, rng.uniform(0, 0.95 * (trace[-1][0] - trace[0][0]))
    n = rng.randrange(len(times))
    after = [t for t, _ in trace if t > times[n]]
    length = (after[0] - times[n]) if after else 0.05
    return phase, n + 1, rng.uniform(0, max(length, 0.002))


def kill_at(pid: int, trace: Path, marker: str, occurrence: int, delay: float, limit: float = 90) -> None:
    """SIGKILL the child `delay` s after its `occurrence`-th `marker` (if it has not ended by then)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        names = [name for _, name in read_trace(trace)]
        if names.count(marker) >= occurrence:
            time.sleep(delay)
            break
        if "exit" in names:
            return
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)  # a child that has just ended is a zombie until waited for: harmless


def test_sigkill_during_ingest_loses_nothing(crash_setup, launcher, model, tmp_path):
    rng = random.Random(SEED)
    targets = list(TARGETS)
    results = []
    started = time.monotonic()
    for run in range(RUNS):
        target = targets[run % len(targets)]
        version = TARGETS[target]
        data = tmp_path / f"run-{run}"
        folder = crash_setup["fresh"] if version == 1 else crash_setup["update"]
        extra = [] if version == 1 else ["--prune"]
        if version == 2:
            shutil.copytree(crash_setup["baseline"], data)
        marker, occurrence, delay = aim(rng, target, crash_setup[version][1])
        trace = tmp_path / f"trace-{run}"
        pid = launcher.start(["--data", data, "ingest", folder, *extra], tmp_path / f"out-{run}", trace)
        kill_at(pid, trace, marker, occurrence, delay)
        status = launcher.wait(pid)
        assert status in (0, -signal.SIGKILL), (run, status, (tmp_path / f"out-{run}").read_text())
        killed = status == -signal.SIGKILL
        outcome = {"run": run, "target": target, "killed": killed, "delay_ms": round(delay * 1000, 1),
                   "last_phase": read_trace(trace)[-1][1] if killed else "completed"}
        if (data / "kb.sqlite3").exists():
            outcome.update(check_after_crash(data, version, crash_setup, model))
        else:
            outcome.update(present=0, absent=len(crash_setup[version][0]), old_version=0, index_repaired=False)
        # a second ingest completes the job
        status, out = launcher.run(["--data", data, "ingest", folder, *extra], tmp_path / f"again-{run}")
        assert status == 0 and " 0 failed" in out, out
        kb = KnowledgeBase.open(Settings(data_dir=data), model)
        assert kb.check()["in_step"]
        kb.close()
        sqlite_checks(data / "kb.sqlite3")
        assert snapshot(data) == crash_setup[version][0], f"run {run}: the second ingest did not finish the job"
        results.append(outcome)
        shutil.rmtree(data)
    summary = crash_summary(results, SEED, started, "crash.json",
                            index_behind_store_then_repaired_on_open=sum(r["index_repaired"] for r in results),
                            documents_checked=sum(r["present"] + r["absent"] + r["old_version"] for r in results))
    phases = summary["last_phase"]
    assert summary["killed"] >= 0.9 * RUNS
    assert phases.get("embed", 0) and phases.get("save", 0) + phases.get("committed", 0), phases
    assert summary["index_behind_store_then_repaired_on_open"] >= 1


def crash_summary(results: list[dict], seed: int, started: float, report: str, **extra) -> dict:
    """The crash runs' totals (the report docs/reliability.md quotes), written to REPORTS/report."""
    summary = {
        "runs": len(results), "killed": sum(r["killed"] for r in results), "seed": seed,
        "last_phase": dict(Counter(r["last_phase"] for r in results)), **extra,
        "documents_whole_new": sum(r["present"] for r in results),
        "documents_whole_old_version": sum(r["old_version"] for r in results),
        "documents_absent": sum(r["absent"] for r in results),
        "documents_partial": 0, "second_ingest_failures": 0,  # either would have failed the test
        "seconds": round(time.monotonic() - started, 1), "runs_detail": results,
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / report).write_text(json.dumps(summary, indent=2))
    return summary


def check_after_crash(data: Path, version: int, setup: dict, model) -> dict:
    """The store opens clean; every document is whole (old or new version) or absent; index in step."""
    sqlite_checks(data / "kb.sqlite3")
    lagging = index_lags(data)
    kb = KnowledgeBase.open(Settings(data_dir=data), model)
    try:
        check = kb.check()
        assert check["in_step"], check
        assert VectorIndex.load(data / "index")[1].generation == kb.store.generation()  # repaired on disk too
        _, hashes, cached = kb.store.chunk_vectors(kb.settings.model)
        assert all(h in cached for h in hashes), "a chunk without its embedding"
        for doc in kb.store.documents(include_retired=True):
            assert (data / doc.stored_path).is_file(), f"{doc.original_name}: stored original missing"
    finally:
        kb.close()
    return {**whole_or_absent(snapshot(data), version, setup), "index_repaired": lagging}


def whole_or_absent(now: dict[str, list[str]], version: int, setup: dict) -> dict[str, int]:
    """Every document is whole (the new version, or for an update the old one) or absent: counts."""
    new, old = setup[version][0], setup[1][0]
    counts = {"present": 0, "absent": 0, "old_version": 0}
    for name in set(new) | set(old):
        if name not in now:
            counts["absent"] += 1
        elif now[name] == new.get(name):
            counts["present"] += 1
        else:
            assert version == 2 and now[name] == old.get(name), f"{name} is partly written"
            counts["old_version"] += 1
    return counts


# crash safety on PostgreSQL ---------------------------------------------------------------------

def pg_snapshot(store) -> dict[str, list[str]]:
    """Each document's chunk texts, by file name (as `snapshot`, through the store's engine)."""
    out: dict[str, list[str]] = {}
    for name, text in sql_rows(store, "SELECT d.original_name, c.text FROM documents d JOIN chunks c "
                                      "ON c.doc_id = d.id ORDER BY d.id, c.ordinal"):
        out.setdefault(name, []).append(text)
    return out


def pg_checks(store) -> None:
    """What PostgreSQL keeps beside the chunks is whole: a keyword row and a vector for every chunk,
    an original for every document, and BM25's statistics equal to a count made afresh."""
    assert sql_rows(store, "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                           "(SELECT 1 FROM chunk_search s WHERE s.chunk_id = c.id)") == [(0,)]
    assert sql_rows(store, "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                           "(SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id)") == [(0,)]
    assert sql_rows(store, "SELECT count(*) FROM documents d WHERE d.stored_path IS NOT NULL AND NOT EXISTS "
                           "(SELECT 1 FROM files f WHERE f.path = d.stored_path)") == [(0,)]
    assert sql_rows(store, f"SELECT count(*) FROM chunk_search s JOIN chunks c ON c.id = s.chunk_id "
                           f"JOIN documents d ON d.id = c.doc_id WHERE s.level <> {LEVEL}") == [(0,)]
    assert sql_rows(store, "SELECT count(*) FROM (SELECT lexeme, level, count(*) AS n FROM chunk_search, "
                           "unnest(tsvector_to_array(terms)) AS lexeme GROUP BY lexeme, level) AS fresh FULL JOIN "
                           "(SELECT term, level, df FROM term_stats WHERE df > 0) AS kept "
                           "ON kept.term = fresh.lexeme AND kept.level = fresh.level "
                           "WHERE kept.df IS DISTINCT FROM fresh.n") == [(0,)]
    kept = dict(sql_rows(store, "SELECT key, value FROM meta WHERE key LIKE 'keyword_chunks_%' "
                                "OR key LIKE 'keyword_length_%'"))
    for level, chunks, length in sql_rows(store, "SELECT n, count(s.chunk_id), coalesce(sum(s.length), 0) "
                                                 "FROM generate_series(0, 2) AS n LEFT JOIN chunk_search s ON s.level = n "
                                                 "GROUP BY n"):
        assert (int(kept.get(f"keyword_chunks_{level}", 0)), int(kept.get(f"keyword_length_{level}", 0))) == \
            (chunks, length)


@pytest.fixture(scope="module")
def pg_baseline(crash_setup, launcher, postgres_server, kb_template, tmp_path_factory):
    """The SQLite baseline (version 1 of the update folder) copied into PostgreSQL by `kb copy`: the
    template of every update run."""
    root = tmp_path_factory.mktemp("crash-pg")
    url = postgres_server.create_database("crash_baseline", template=kb_template)
    status, out = launcher.run(["--data", crash_setup["baseline"], "copy", "--to", url], root / "baseline.out")
    assert status == 0, out
    return "crash_baseline"


def test_sigkill_during_ingest_into_postgresql_loses_nothing(crash_setup, pg_baseline, launcher, model, tmp_path,
                                                              postgres_server, kb_template):
    """As the test above, on PostgreSQL: a killed ingest's transaction is rolled back by the server,
    its advisory lock released with its connection, and the next ingest finishes the job."""
    rng = random.Random(SEED + 1)
    targets = [t for t in TARGETS if not t.endswith("save")]  # no index files to save on PostgreSQL
    results = []
    started = time.monotonic()
    for run in range(RUNS):
        target = targets[run % len(targets)]
        version = TARGETS[target]
        name = f"crash_pg_{run}"
        url = postgres_server.create_database(name, template=kb_template if version == 1 else pg_baseline)
        data = tmp_path / f"run-{run}"  # caches only
        folder = crash_setup["fresh"] if version == 1 else crash_setup["update"]
        extra = [] if version == 1 else ["--prune"]
        marker, occurrence, delay = aim(rng, target, crash_setup[version][1])
        trace = tmp_path / f"trace-{run}"
        argv = ["--data", data, "--database-url", url, "ingest", folder, *extra]
        pid = launcher.start(argv, tmp_path / f"out-{run}", trace)
        kill_at(pid, trace, marker, occurrence, delay)
        status = launcher.wait(pid)
        assert status in (0, -signal.SIGKILL), (run, status, (tmp_path / f"out-{run}").read_text())
        killed = status == -signal.SIGKILL
        kb = KnowledgeBase.open(Settings(data_dir=data, database_url=url), model)
        try:
            assert kb.check()["in_step"]
            pg_checks(kb.store)
            now = pg_snapshot(kb.store)
        finally:
            kb.close()
        counts = whole_or_absent(now, version, crash_setup)
        status, out = launcher.run(argv, tmp_path / f"again-{run}")
        assert status == 0 and " 0 failed" in out, out
        kb = KnowledgeBase.open(Settings(data_dir=data, database_url=url), model)
        try:
            assert kb.check()["in_step"]
            pg_checks(kb.store)
            assert pg_snapshot(kb.store) == crash_setup[version][0], f"run {run}: the second ingest did not finish the job"
        finally:
            kb.close()
        postgres_server.drop_database(name)
        results.append({"run": run, "target": target, "killed": killed, "delay_ms": round(delay * 1000, 1),
                        "last_phase": read_trace(trace)[-1][1] if killed else "completed", **counts})
    summary = crash_summary(results, SEED + 1, started, "crash-postgresql.json")
    assert summary["killed"] >= 0.9 * RUNS
    assert summary["last_phase"].get("embed", 0) and summary["last_phase"].get("write", 0) + \
        summary["last_phase"].get("commit", 0), summary["last_phase"]


# readers during writes ----------------------------------------------------------------------------

def http_json(base: str, path: str, **params) -> tuple[int, dict]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def live(tmp_path, model):
    """A collection of five notes served by the real app on waitress, on a free loopback port."""
    from waitress import create_server

    from web import create_app

    first = tmp_path / "first"
    first.mkdir()
    rng = random.Random(3)
    for i in range(5):
        (first / f"old-{i}.md").write_text(f"# Old note {i}\n\n{paragraph(rng, 40)}\n")
    settings = Settings(data_dir=tmp_path / "data")
    kb = KnowledgeBase.open(settings, model)
    assert ingest_paths(kb, [first]).ok
    server = create_server(create_app(settings, {"TESTING": True}, kb=kb), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", settings
    server.close()
    thread.join(10)
    kb.close()


def new_folder(root: Path, name: str, count: int, phrase: str) -> Path:
    folder = root / name
    folder.mkdir()
    rng = random.Random(name)
    for i in range(count):
        body = f"{paragraph(rng, 40)} {phrase} {i}." if i == 0 else paragraph(rng, 40)
        (folder / f"{name}-{i}.md").write_text(f"# {name} {i}\n\n{body}\n")
    return folder


def test_searches_succeed_while_another_process_writes(live, launcher, tmp_path):
    base, settings = live
    data = settings.data_dir
    incoming = new_folder(tmp_path, "incoming", 16, "Zanzibar orchestra rehearsal")
    queued = new_folder(tmp_path, "queued", 3, "Quokka lantern festival")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-m", "cli", "--data", str(data), "ingest", str(incoming)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    http, failures, stop = Counter(), [], threading.Event()

    def search_over_http():  # bounded: 1000 requests at most, and the writer's lifetime
        modes = ("hybrid", "dense", "keyword")
        while not stop.is_set() and http["total"] < 1000:
            status, body = http_json(base, "/api/search", q="community volunteers", mode=modes[http["total"] % 3])
            http["total"] += 1
            if status != 200 or "hits" not in body:
                failures.append((status, body))
            stop.wait(0.01)

    def search_through_the_cli():  # one `kb search` process after another, while the writer runs
        while not stop.is_set() and len(cli_runs) < 200:
            out = tmp_path / f"search-{len(cli_runs)}.out"
            pid = launcher.start(["--data", data, "search", "--json", "--", "health grant"], out)
            cli_runs.append((launcher.wait(pid), out))

    cli_runs, busy, second = [], None, None
    readers = [threading.Thread(target=search_over_http, daemon=True),
               threading.Thread(target=search_through_the_cli, daemon=True)]
    for thread in readers:
        thread.start()
    probe = KnowledgeBase.open(settings, FakeEmbedder())  # a would-be second writer in this process
    started = time.monotonic()
    try:
        while writer.poll() is None and time.monotonic() - started < 150:
            if busy is None:
                try:
                    with probe.writing(wait=0):
                        pass
                except Busy as exc:  # the writer holds the lock: a second writer queues behind it
                    busy = str(exc)
                    second = launcher.start(["--data", data, "ingest", queued], tmp_path / "second.out")
            time.sleep(0.02)
        output = writer.communicate(timeout=120)[0]
    finally:
        stop.set()
        for thread in readers:
            thread.join(60)
        probe.close()
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, output
    assert not failures, failures[:3]
    for status, out in cli_runs:
        assert status == 0, out.read_text()
        assert isinstance(json.loads(out.read_text())["hits"], list)
    assert busy == "another process is writing to this collection; try again when it ends"
    assert launcher.wait(second) == 0, (tmp_path / "second.out").read_text()
    assert http["total"] >= 10 and len(cli_runs) >= 2

    # the running server sees the committed documents, by meaning and by keyword, without a restart
    for mode in ("dense", "keyword"):
        status, body = http_json(base, "/api/search", q="Zanzibar orchestra rehearsal", mode=mode, k=3)
        assert status == 200 and body["hits"][0]["title"] == "incoming 0", (mode, body)
    stats, health = http_json(base, "/api/stats")[1], http_json(base, "/healthz")[1]
    assert stats["documents"] == health["documents"] == 5 + 16 + 3

    # a removal by another process, with searches running meanwhile
    doc_id = body["hits"][0]["doc_id"]
    pid = launcher.start(["--data", data, "remove", str(doc_id)], tmp_path / "remove.out")
    for _ in range(20):
        assert http_json(base, "/api/search", q="Zanzibar orchestra rehearsal", mode="hybrid")[0] == 200
    assert launcher.wait(pid) == 0, (tmp_path / "remove.out").read_text()
    for mode in ("dense", "keyword", "hybrid"):
        status, body = http_json(base, "/api/search", q="Zanzibar orchestra rehearsal", mode=mode, k=10)
        assert status == 200 and all(h["doc_id"] != doc_id for h in body["hits"])
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "readers.json").write_text(json.dumps({
        "http_searches_during_ingest": http["total"], "cli_searches_during_ingest": len(cli_runs),
        "failed": 0, "ingest_seconds": round(time.monotonic() - started, 1)}, indent=2))


def test_two_writers_both_finish_and_nothing_is_lost(launcher, tmp_path, model):
    data = tmp_path / "data"
    one = new_folder(tmp_path, "one", 12, "Walrus choir")
    two = new_folder(tmp_path, "two", 12, "Narwhal library")
    first = launcher.start(["--data", data, "ingest", one], tmp_path / "one.out")
    second = launcher.start(["--data", data, "ingest", two], tmp_path / "two.out")
    assert launcher.wait(first) == 0, (tmp_path / "one.out").read_text()
    assert launcher.wait(second) == 0, (tmp_path / "two.out").read_text()
    sqlite_checks(data / "kb.sqlite3")
    kb = KnowledgeBase.open(Settings(data_dir=data), model)
    assert kb.store.count() == 24 and kb.check()["in_step"]
    kb.close()


def test_a_reader_catches_up_after_a_writer_it_saw_mid_way(tmp_path):
    """A reader that looks between another writer's commit and its index save keeps its old index,
    searches without error, then picks up the saved index on its next search (it used to keep the
    stale one for good)."""
    from kb.models import Block, DocMeta, LoadedDocument, NewDocument
    from kb.search import Searcher

    settings = Settings(data_dir=tmp_path / "d", model="fake")
    writer, reader = KnowledgeBase.open(settings, FakeEmbedder()), KnowledgeBase.open(settings, FakeEmbedder())

    def doc(source, text):
        return NewDocument(source, f"sha-{source}", LoadedDocument([Block(text, "para")]), DocMeta())

    with writer.writing():
        writer.add_batch([doc("a", "alpha words")])
    assert Searcher(reader).search("alpha", mode="dense").hits
    save = writer._save_index
    with writer.writing():
        writer._save_index = lambda: None  # committed, index not yet saved
        writer.add_batch([doc("b", "zebra crossing")])
        assert reader.check() == {"in_step": False, "index": 1, "store": 2}  # the writer holds the lock
        for mode in ("hybrid", "dense", "keyword"):  # a keyword hit the old index lacks is no error
            result = Searcher(reader).search("zebra crossing", mode=mode)
            assert result.total + len(result.nearest) >= 1  # the old index's passage, matching or nearest
        save()
    del writer._save_index
    hits = Searcher(reader).search("zebra crossing", mode="dense").hits
    assert hits[0].source == "b" and reader.check()["in_step"]
    writer.close()
    reader.close()
