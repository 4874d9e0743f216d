"""`kb ingest --dask`: a real Dask scheduler with two worker processes on 127.0.0.1, the real model,
real databases. The collection equals a local ingest's; a worker killed mid-ingest costs no file;
a file that cannot be read fails alone."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal

import numpy as np
import pytest
from conftest import CORPUS, encrypted_pdf, make_pdf

from cli import main
from ingest import distributed
from support.formats import make_eml, make_pptx
from ingest.pipeline import ingest_paths
from kb.collection import KnowledgeBase
from kb.settings import Settings

pytestmark = pytest.mark.model
TOPICS = ["walking groups in Leeds meet every week with peer supporters",
          "a community garden in Croydon grows food with local families",
          "advice sessions in Newham help residents with money worries",
          "link workers in Plymouth connect people to local groups",
          "a learning event in Coventry shared what partners found about trust"]


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two single-threaded worker processes (each under its nanny), on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)  # a worker killed by an earlier test is back
        yield client


@pytest.fixture
def second_url(database_url, request):
    """Another empty collection on the same backend as `database_url`."""
    if not database_url:
        yield ""
        return
    server = request.getfixturevalue("postgres_server")
    yield server.create_database("dask_twin", template=request.getfixturevalue("kb_template"))
    server.drop_database("dask_twin")


class Messages(logging.Handler):
    """Log messages that contain `text`."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.messages = text, []

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.messages.append(record.getMessage())


def folder_of_files(tmp_path, count: int = 6, paragraphs: int = 3):
    """Generated text files of a few paragraphs each, in a fresh folder."""
    folder = tmp_path / "generated"
    folder.mkdir()
    for n in range(count):
        text = "\n\n".join(f"Note {n}.{p}: {TOPICS[(n + p) % len(TOPICS)]}, and what they learned in month {p + 1}."
                           for p in range(paragraphs))
        (folder / f"note-{n:02}.txt").write_text(text)
    return folder


def snapshot(kb: KnowledgeBase):
    """Documents, chunk texts and vectors, in source order."""
    docs = sorted(kb.store.documents(include_retired=True), key=lambda d: d.source)
    passages = {d.id: kb.store.chunks_of(d.id) for d in docs}
    ids = np.array([p.id for d in docs for p in passages[d.id]], dtype=np.int64)
    return ([(d.source, d.sha256, d.title, d.site, d.tags, d.published, d.mime, d.edited) for d in docs],
            [(d.source, p.ordinal, p.text, p.heading, p.page) for d in docs for p in passages[d.id]],
            kb.index.vectors(ids))


def test_a_dask_ingest_equals_a_local_one(tmp_path, model, cluster, database_url, second_url):
    folder = folder_of_files(tmp_path)
    for name in ("learning-report-plymouth.pdf", "profile-gloucestershire.docx", "news-programme-launch.html",
                 "learning-report-leeds.md", "timeline.txt"):
        shutil.copy(CORPUS / "docs" / name, folder / name)
    (folder / "timeline.txt.meta.json").write_text(json.dumps({"title": "The programme's timeline"}))
    # a deck, and an email whose attachment is read where its message is written (issue 20)
    (folder / "deck.pptx").write_bytes(make_pptx([("Trust", ["Residents chaired the meetings"], "Thank them")]))
    (folder / "update.eml").write_bytes(make_eml("Croydon update", "The garden grew.", attachments=[
        ("garden.pdf", make_pdf([[("p", "Families grew food together in Croydon.")]]), "application/pdf")]))
    local = KnowledgeBase.open(Settings(data_dir=tmp_path / "local", database_url=database_url), model)
    dask = KnowledgeBase.open(Settings(data_dir=tmp_path / "dask", database_url=second_url,
                                       dask_scheduler=cluster.scheduler_address), model)

    def both() -> list[list[tuple[str, str]]]:
        return [[(i.name, i.status) for i in ingest_paths(kb, [folder]).items] for kb in (local, dask)]

    first_local, first_dask = both()
    assert first_local == first_dask and {status for _, status in first_local} == {"added"}
    # a curator's title, embedded with the new version's chunks; new text; a new file
    for kb in (local, dask):
        kb.update(kb.resolve(str(folder / "learning-report-leeds.md")).id, {"title": "Leeds: what partners learned"})
    with open(folder / "learning-report-leeds.md", "a") as fh:
        fh.write("\n\n## Afterword\n\nThe partners met again a year later to look back on the work.\n")
    (folder / "note-99.txt").write_text("A late note about volunteers who drive people to appointments.")
    second_local, second_dask = both()
    assert second_local == second_dask and {"updated", "added", "unchanged"} == {s for _, s in second_local}
    docs_local, chunks_local, vectors_local = snapshot(local)
    docs_dask, chunks_dask, vectors_dask = snapshot(dask)
    assert docs_dask == docs_local and len(docs_local) == 15
    assert chunks_dask == chunks_local
    assert vectors_dask.shape == vectors_local.shape and np.abs(vectors_dask - vectors_local).max() <= 1e-5
    assert dask.check()["in_step"]
    local.close()
    dask.close()


@pytest.mark.parametrize("allowed_failures", [None, 0], ids=["retried-by-dask", "split-into-single-files"])
def test_a_worker_killed_mid_ingest_costs_no_file(tmp_path, model, cluster, client, monkeypatch, allowed_failures):
    """Killed with tasks on it: Dask runs them again elsewhere; with no retries allowed, the
    coordinator sends each of their files again on its own."""
    monkeypatch.setattr(distributed, "TASK_FILES", 2)
    monkeypatch.setattr(distributed, "FIRST_TASK_FILES", 2)
    folder = folder_of_files(tmp_path, count=16, paragraphs=30)  # tasks long enough to be caught
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", dask_scheduler=cluster.scheduler_address), model)
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(_embedded: int) -> None:  # when the first task's vectors are in
        busy = [worker for worker, tasks in client.processing().items() if tasks]
        if not killed and busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    allowed = cluster.scheduler.allowed_failures
    if allowed_failures is not None:
        cluster.scheduler.allowed_failures = allowed_failures
    given_up = Messages("marked as failed because")  # the scheduler's word on a task it stops retrying
    logging.getLogger("distributed.scheduler").addHandler(given_up)
    try:
        report = ingest_paths(kb, [folder], on_embed=kill_a_busy_worker)
    finally:
        cluster.scheduler.allowed_failures = allowed
        logging.getLogger("distributed.scheduler").removeHandler(given_up)
    assert killed, "no worker was busy to kill"
    removed = [event for _, event in client.get_events("all")
               if event.get("action") == "remove-worker" and event.get("worker") == killed[0]]
    assert removed and removed[-1]["processing-tasks"], "the worker died with no task on it"
    assert bool(given_up.messages) == (allowed_failures == 0)
    assert [(i.name, i.status) for i in report.items] == [(str(p), "added") for p in sorted(folder.iterdir())]
    assert kb.store.count("documents") == 16 and kb.check()["in_step"]
    kb.close()


def test_each_file_that_cannot_be_read_fails_on_its_own_line(tmp_path, model, cluster, capsys):
    folder = folder_of_files(tmp_path, count=3)
    (folder / "junk.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "locked.pdf").write_bytes(encrypted_pdf(make_pdf([[("p", "A report nobody can open.")]])))
    code = main(["--data", str(tmp_path / "data"), "ingest", str(folder), "--dask", cluster.scheduler_address])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("added ", "failed "))]
    assert code == 1 and len(lines) == 5
    assert sorted(line for line in lines if line.startswith("failed")) == [
        f"failed    {folder / 'junk.txt'}: binary data, not text",
        f"failed    {folder / 'locked.pdf'}: encrypted PDF: it needs a password"]


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "CONNECT_SECONDS", 1)
    code = main(["--data", str(tmp_path / "data"), "ingest", str(tmp_path), "--dask", "tcp://127.0.0.1:9"])
    assert code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
