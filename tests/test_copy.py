"""`kb copy`: a collection moves from SQLite + FAISS to PostgreSQL and back with nothing lost or
embedded again: documents, curator edits, accounts, audit, jobs, themes, vectors, originals."""

from __future__ import annotations

import json

import pytest
from conftest import FakeEmbedder

from cli import main
from ingest.pipeline import ingest_paths
from kb import audit, themes
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.errors import BadRequest
from kb.jobs import Jobs
from kb.models import Filters
from kb.search import Searcher
from kb.settings import Settings
from kb.transfer import copy_collection
from support.backends import sqlite_only

TOPICS = ["walking groups in Leeds meet every week with peer supporters",
          "a community garden in Croydon grows food with local families",
          "advice sessions in Newham help residents with money worries",
          "link workers in Plymouth connect people to local groups",
          "a learning event in Coventry shared what partners found about trust"]


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the texts it is asked to embed."""

    def __init__(self):
        self.embedded = 0

    def encode(self, texts):
        self.embedded += len(texts)
        return super().encode(texts)


def snapshot(kb: KnowledgeBase) -> dict:
    searcher = Searcher(kb)
    docs = kb.store.documents(include_retired=True)
    return {
        "documents": [(d.id, d.title, d.site, d.visibility, d.status, d.tags, d.edited, d.chunk_count) for d in docs],
        "searches": {mode: sorted(((round(h.score, 4), h.chunk_id) for h in searcher.search(
            "walking groups garden", k=5, mode=mode, filters=Filters(visibility=("public",))).hits),
            key=lambda hit: (-hit[0], hit[1]))  # equal scores have no order of their own
            for mode in ("dense", "hybrid")},
        "users": [(u.name, u.role) for u in Accounts(kb.store).list()],
        "audit": [(e.actor, e.action, e.target) for e in audit.entries(kb.store)],
        "jobs": [(j.id, j.status, j.original_name) for j in Jobs(kb.store).list()],
        "themes": sorted((t.id, t.passages, t.name) for t in themes.visible_themes(kb, ("public", "partners", "curators"))),
        "theme names": [(t.id, t.name, t.centroid.tolist()) for t in kb.store.themes.named()],
        "originals": {d.id: kb.files.read(d.stored_path) for d in docs if d.stored_path},
    }


@sqlite_only
def test_a_collection_moves_to_postgresql_and_back_unchanged(fake_kb, kb_database, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for n, text in enumerate(TOPICS):
        (folder / f"note{n}.md").write_text(f"# Note {n}\n\n{text}\n")
    ingest_paths(fake_kb, [folder])
    first = fake_kb.store.documents()[0]
    fake_kb.update(first.id, {"visibility": "curators", "tags": ["lived experience"]})
    fake_kb.set_status(fake_kb.store.documents()[1].id, "retired")
    Accounts(fake_kb.store).add("curator1", "curator", "a long enough password")
    audit.record(fake_kb.store, "curator1", "edit", f"document {first.id}", "visibility=curators")
    Jobs(fake_kb.store).create("upload", "curator1", "report.pdf")
    with fake_kb.writing():
        themes.build(fake_kb, k=2)
    themes.rename(fake_kb, 1, "Walking groups")  # with the centre that carries it through rebuilds
    before = snapshot(fake_kb)

    embedder = CountingEmbedder()
    on_postgres = KnowledgeBase.open(Settings(data_dir=tmp_path / "node", model="fake", database_url=kb_database), embedder)
    report = copy_collection(fake_kb, on_postgres)
    assert report.rows["documents"] == 5 and report.files == 5 and report.vectors == 5 and not report.missing_files
    assert embedder.embedded == 0  # vectors come from the embedding cache
    assert snapshot(on_postgres) == before
    assert Accounts(on_postgres.store).authenticate("curator1", "a long enough password", "127.0.0.1") is not None
    assert not (tmp_path / "node").exists() or not any((tmp_path / "node").rglob("*.sqlite3"))  # nothing on the node

    with pytest.raises(BadRequest, match="already holds a collection"):
        copy_collection(fake_kb, on_postgres)
    back = KnowledgeBase.open(Settings(data_dir=tmp_path / "back", model="fake"), embedder)
    embedder.embedded = 0  # the searches above encoded their queries
    copy_collection(on_postgres, back)
    assert embedder.embedded == 0
    assert snapshot(back) == before
    assert back.check()["in_step"] and on_postgres.check()["in_step"]
    # a document added after the copy takes the next id, on both
    (folder / "new.md").write_text("# New\n\nsocial prescribing in Gloucestershire\n")
    for kb in (on_postgres, back):
        ingest_paths(kb, [folder / "new.md"])
        assert max(d.id for d in kb.store.documents(include_retired=True)) == 6
    on_postgres.close()
    back.close()


@sqlite_only
def test_kb_copy_command_refuses_a_full_target_unless_forced(fake_kb, kb_database, tmp_path, capsys):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "note.md").write_text("# Note\n\nwalking groups in Leeds\n")
    ingest_paths(fake_kb, [folder])
    data = str(fake_kb.data_dir)
    args = ["--data", data, "--model", "fake", "copy", "--to", kb_database, "--json"]
    fake_kb.close()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["rows"]["documents"] == 1
    assert main(args) == 1
    assert "pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_a_forced_copy_replaces_a_sqlite_collection_with_its_reader_indexes_and_follows(tmp_path):
    """FTS5 refuses DELETE on the contentless reader indexes: a forced copy into a SQLite folder that
    held a collection failed; and follows and feed tokens were left behind."""
    from kb.follows import Follows

    def collection(name: str, words: str) -> KnowledgeBase:
        kb = KnowledgeBase.open(Settings(data_dir=tmp_path / name, model="fake"), FakeEmbedder())
        folder = tmp_path / f"{name}-files"
        folder.mkdir()
        (folder / "note.md").write_text(f"# Note\n\n{words}\n")
        ingest_paths(kb, [folder])
        return kb

    source, target = collection("a", "walking groups in Leeds"), collection("b", "octopus gardens in Croydon")
    user = Accounts(source.store).add("par", "partner", "a long enough passphrase for partners")
    follows = Follows(source, Searcher(source))
    follows.follow_search(user, "walking groups", Filters(visibility=user.visibility()), "hybrid")
    follows.new_token(user)
    counts = copy_collection(source, target, replace=True).rows
    assert counts["follows"] == 1 and counts["feed_tokens"] == 1
    visitor = Filters(visibility=("public",))
    assert target.store.keyword_search(["walking"], visitor, 5) == source.store.keyword_search(["walking"], visitor, 5)
    assert target.store.keyword_search(["octopus"], visitor, 5) == []
    source.close()
    target.close()
