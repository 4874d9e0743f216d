"""Store and index kept in step (real SQLite, real FAISS; fake vectors for speed)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from conftest import FakeEmbedder
from kb.collection import KnowledgeBase
from kb.errors import BadRequest, Busy, NotFound
from kb.index import VectorIndex
from kb.models import Block, DocMeta, Filters, LoadedDocument, NewDocument
from kb.search import Searcher
from kb.settings import Settings
from support.backends import sqlite_only


def new_doc(source: str, paragraphs: list[str], **meta) -> NewDocument:
    blocks = [Block(p, "para") for p in paragraphs]
    return NewDocument(source, f"sha-{source}-{hash(tuple(paragraphs))}", LoadedDocument(blocks), DocMeta(**meta))


def add(kb, *docs):
    with kb.writing():
        return kb.add_batch(list(docs))


def in_step(kb) -> bool:
    return kb.check()["in_step"]


def test_add_search_remove_keep_store_and_index_in_step(fake_kb):
    out = add(fake_kb,
              new_doc("a", ["volunteers in plymouth build trust"], site="Plymouth", doc_type="learning-report"),
              new_doc("b", ["well newham covers newham"], site="Newham", doc_type="profile"))
    assert [o.status for o in out] == ["added", "added"]
    assert in_step(fake_kb)
    hits = Searcher(fake_kb).search("newham partnership", k=5).hits
    assert hits[0].title and hits[0].site == "Newham"
    fake_kb.remove(out[1].doc_id)
    assert in_step(fake_kb)
    assert all(h.doc_id != out[1].doc_id for h in Searcher(fake_kb).search("newham", k=5).hits)
    with pytest.raises(NotFound):
        fake_kb.store.get(out[1].doc_id)


def test_a_changed_document_replaces_its_chunks(fake_kb):
    add(fake_kb, new_doc("a", ["old words about apples"]))
    first_ids = set(fake_kb.store.chunk_ids().tolist())
    out = add(fake_kb, new_doc("a", ["new words about pears"]))
    assert out[0].status == "updated"
    assert not first_ids & set(fake_kb.store.chunk_ids().tolist())
    assert in_step(fake_kb)
    assert Searcher(fake_kb).search("pears", mode="keyword").hits
    assert not Searcher(fake_kb).search("apples", mode="keyword").hits


@pytest.mark.parametrize("filters, expected", [
    (Filters(site=["Leeds"]), {"leeds"}),
    (Filters(doc_type=["profile"]), {"newham"}),
    (Filters(year=[2020]), {"leeds"}),
    (Filters(tag=["volunteers"]), {"leeds", "newham"}),
    (Filters(visibility=("public",)), {"newham", "retired-later"}),
    (Filters(date_from="2021-01-01", date_to="2021-12-31"), {"newham", "retired-later"}),
])
@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_filters_apply_inside_every_retriever(fake_kb, filters, expected, mode):
    add(fake_kb,
        new_doc("leeds", ["community learning story told in leeds"], site="Leeds", published="2020-05-01",
                tags=["volunteers"], visibility="partners"),
        new_doc("newham", ["community learning story from newham people"], site="Newham", doc_type="profile",
                published="2021-02-01", tags=["volunteers"]),
        new_doc("retired-later", ["community learning story by a croydon team"], site="Croydon", published="2021-03-01"))
    hits = Searcher(fake_kb).search("community learning story", k=10, filters=filters, mode=mode).hits
    assert {h.source for h in hits} == expected


def test_retired_documents_are_hidden_and_restorable(fake_kb):
    out = add(fake_kb, new_doc("a", ["unique zebra passage"]))
    fake_kb.set_status(out[0].doc_id, "retired")
    for mode in ("dense", "keyword", "hybrid"):
        assert not Searcher(fake_kb).search("zebra", mode=mode).hits
    fake_kb.set_status(out[0].doc_id, "active")
    assert Searcher(fake_kb).search("zebra", mode="keyword").hits


PUBLIC, PARTNER = Filters(visibility=("public",)), Filters(visibility=("public", "partners"))


def keyword_scores(kb, query: str, filters: Filters) -> list[tuple[str, float]]:
    return [(h.source, h.score) for h in Searcher(kb).search(query, k=10, filters=filters, mode="keyword").hits]


def test_keyword_scores_count_only_what_the_reader_may_see(fake_kb):
    """BM25's statistics would otherwise tell a visitor that a hidden document holds a word: their
    scores moved 4.4% when a curators-only upload containing "octopus" arrived (issue 17)."""
    fillers = [new_doc(f"f{n}", [f"walking group {n} shares what it learnt about {word}"])
               for n, word in enumerate(("housing", "food", "money", "loneliness", "transport", "gardens") * 3)]
    add(fake_kb, new_doc("p1", ["the octopus garden project meets on tuesdays"]),
        new_doc("p2", ["an octopus of partners: octopus arms reach every ward and the garden"]), *fillers)
    public = {q: keyword_scores(fake_kb, q, PUBLIC) for q in ("octopus", "octopus garden", "garden")}
    partner = {q: keyword_scores(fake_kb, q, PARTNER) for q in public}
    hidden = add(fake_kb, new_doc("h1", ["octopus octopus notes from the curators", "more garden octopus"],
                                  visibility="curators"),
                 new_doc("h2", ["an octopus for partners only"], visibility="partners"),
                 new_doc("h3", ["retired octopus garden notes"]))
    fake_kb.set_status(hidden[2].doc_id, "retired")
    assert {q: keyword_scores(fake_kb, q, PUBLIC) for q in public} == public  # scores and order, exactly
    assert keyword_scores(fake_kb, "octopus", PARTNER) != partner["octopus"]  # partners count theirs
    assert keyword_scores(fake_kb, "octopus", Filters())[0][0] == "h1"  # curators see everything
    # a document that becomes public counts for visitors from then on, and stops when hidden again
    fake_kb.update(hidden[0].doc_id, {"visibility": "public"})
    assert keyword_scores(fake_kb, "octopus", PUBLIC)[0][0] == "h1"
    fake_kb.update(hidden[0].doc_id, {"visibility": "curators", "title": "Curators' octopus notes"})
    fake_kb.set_status(hidden[2].doc_id, "active")
    fake_kb.set_status(hidden[2].doc_id, "retired")
    assert {q: keyword_scores(fake_kb, q, PUBLIC) for q in public} == public
    fake_kb.remove(hidden[0].doc_id)
    fake_kb.remove(hidden[1].doc_id)
    assert {q: keyword_scores(fake_kb, q, PARTNER) for q in public} == partner
    assert in_step(fake_kb)


def test_metadata_edit_takes_effect_without_reembedding(fake_kb):
    out = add(fake_kb, new_doc("a", ["grant passage"], site="Leeds"))
    embedded = fake_kb.store.count("embeddings")
    fake_kb.update(out[0].doc_id, {"site": "Coventry", "title": "Renamed report"})
    hit = Searcher(fake_kb).search("renamed", mode="keyword").hits[0]
    assert (hit.site, hit.title) == ("Coventry", "Renamed report")
    assert fake_kb.store.count("embeddings") == embedded
    with pytest.raises(BadRequest):
        fake_kb.update(out[0].doc_id, {"visibility": "everyone"})


def test_identical_chunk_texts_are_embedded_once(fake_kb, monkeypatch):
    calls = []
    original = fake_kb.embedder.encode
    monkeypatch.setattr(fake_kb.embedder, "encode", lambda texts: calls.append(list(texts)) or original(texts))
    add(fake_kb, new_doc("a", ["same words"], title="T"), new_doc("b", ["same words"], title="T"))
    assert sum(len(c) for c in calls) == 1
    add(fake_kb, new_doc("c", ["same words"], title="T"))
    assert sum(len(c) for c in calls) == 1  # cached by (model, text hash)


def test_near_duplicate_documents_are_recorded_and_folded(fake_kb):
    text = [f"The programme gives each area up to five hundred thousand pounds, sentence {i}." for i in range(12)]
    out = add(fake_kb, new_doc("outlet-1", text, title="Outlet one"),
              new_doc("outlet-2", text[:11] + ["A different closing line from the second outlet."], title="Outlet two"))
    assert fake_kb.store.get(out[1].doc_id).dup_of == out[0].doc_id  # found within the batch
    later = add(fake_kb, new_doc("outlet-3", text[1:] + ["Another closing line."], title="Outlet three"))
    assert fake_kb.store.get(later[0].doc_id).dup_of == out[0].doc_id  # found through the stored bands
    fake_kb.remove(later[0].doc_id)
    hits = Searcher(fake_kb).search("five hundred thousand pounds", k=10).hits
    assert len({h.doc_id for h in hits}) == 1
    assert hits[0].also_in and hits[0].also_in[0]["title"] in ("Outlet one", "Outlet two")


def test_a_document_replaced_in_a_batch_counts_by_its_new_text_for_the_rest_of_it(fake_kb):
    text = [f"The programme gives each area up to five hundred thousand pounds, sentence {i}." for i in range(12)]
    other = [f"Walking groups in Leeds met every Tuesday morning, note {i}." for i in range(12)]
    first = add(fake_kb, new_doc("x", text))[0]
    out = add(fake_kb, new_doc("x", other), new_doc("y", text))  # x changes; y holds x's old text
    assert [o.status for o in out] == ["updated", "added"]
    assert fake_kb.store.get(out[1].doc_id).dup_of is None, "compared with text x no longer holds"
    assert out[0].doc_id == first.doc_id


def test_index_repaired_on_open_after_a_crash_between_store_and_index(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", model="fake")
    kb = KnowledgeBase.open(settings, FakeEmbedder())
    add(kb, new_doc("a", ["alpha text"]), new_doc("b", ["beta text"]))
    saved = VectorIndex.load(kb.index_dir)
    add(kb, new_doc("c", ["gamma text"]))
    saved[0].save(kb.index_dir, saved[1].generation)  # as if the process died before saving the index
    kb.close()
    reopened = KnowledgeBase.open(settings, FakeEmbedder())
    assert in_step(reopened)
    assert Searcher(reopened).search("gamma", mode="dense").hits[0].source == "c"


@sqlite_only
def test_reindex_rebuilds_from_stored_embeddings(fake_kb):
    add(fake_kb, new_doc("a", ["alpha"]), new_doc("b", ["beta"]))
    (fake_kb.index_dir / "vectors.faiss").write_bytes(b"garbage")
    assert fake_kb.reindex() == 2
    assert in_step(fake_kb)
    manifest = json.loads((fake_kb.index_dir / "manifest.json").read_text())
    assert manifest["count"] == 2 and manifest["kind"] == "flat" and manifest["model"] == "fake"


def test_reindex_keeps_every_backend_in_step(fake_kb):
    add(fake_kb, new_doc("a", ["alpha"]), new_doc("b", ["beta"]))
    assert fake_kb.reindex() == 2
    assert in_step(fake_kb)
    assert Searcher(fake_kb).search("beta", mode="dense").hits[0].source == "b"


def test_hnsw_index_kind_and_removal(tmp_path, database_url):
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "d", model="fake", index_kind="hnsw", database_url=database_url),
                            FakeEmbedder())
    out = add(kb, *[new_doc(f"d{i}", [f"document number {i} words"]) for i in range(30)])
    assert kb.index.kind == "hnsw"
    kb.remove(out[0].doc_id)
    assert in_step(kb)
    assert Searcher(kb).search("document number 5", mode="dense", filters=Filters(site=[])).hits


def test_an_approximate_collection_keeps_filters_and_visibility_inside_every_mode(tmp_path, database_url):
    """With an HNSW index, PostgreSQL's keyword search may stop early too; neither leaks."""
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "d", model="fake", index_kind="hnsw", database_url=database_url),
                            FakeEmbedder())
    add(kb, *[new_doc(f"d{i}", [f"zebra crossing notes number {i}"], site=("Leeds", "Newham")[i % 2]) for i in range(40)],
        new_doc("hidden", ["zebra zebra zebra crossing"], visibility="curators", site="Leeds"))
    searcher = Searcher(kb)
    for mode in ("hybrid", "keyword", "dense"):
        public = searcher.search("zebra crossing", k=50, mode=mode, filters=Filters(visibility=("public",)))
        assert public.hits and "hidden" not in {h.source for h in public.hits}, mode
        newham = searcher.search("zebra crossing", k=50, mode=mode, filters=Filters(site=["Newham"]))
        assert newham.hits and {h.site for h in newham.hits} == {"Newham"}, mode
    assert searcher.search("zebra", mode="keyword").hits[0].source == "hidden"


def test_a_narrow_filter_on_an_hnsw_collection_still_finds_its_passages(tmp_path, database_url, monkeypatch):
    """pgvector's iterative scan gives up after a bounded number of rows; kb then scans exactly."""
    from kb.storage import vectors

    monkeypatch.setattr(vectors, "EF_SEARCH", 10)
    monkeypatch.setattr(vectors, "MAX_SCAN_TUPLES", 20)
    if database_url:  # make PostgreSQL take the HNSW index (its order) even for a table this small
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {database_url.rsplit('/', 1)[1]} SET enable_sort = off")
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "d", model="fake", index_kind="hnsw", database_url=database_url),
                            FakeEmbedder())
    add(kb, *[new_doc(f"d{i}", [f"walking group notes {i}"], site="Leeds") for i in range(150)],
        *[new_doc(f"far{i}", [f"money advice for families {i}"], site="Croydon") for i in range(40)])
    croydon = set(kb.store.allowed_chunk_ids(Filters(site=["Croydon"])).tolist())
    found = kb.index.search(kb.embedder.encode_query("walking group notes"), 30, filters=Filters(site=["Croydon"])) \
        if kb.store.keeps_vectors else kb.index.search(kb.embedder.encode_query("walking group notes"), 30,
                                                       np.sort(np.asarray(list(croydon))))
    assert len(found) == 30 and {i for i, _ in found} <= croydon


def test_the_same_source_twice_in_one_batch_keeps_the_later_version(fake_kb):
    out = add(fake_kb, new_doc("a", ["walking groups in the park"]), new_doc("b", ["carers"]),
              new_doc("a", ["money advice for families"]))
    assert [o.status for o in out] == ["added", "added", "updated"]
    assert fake_kb.store.count("documents") == 2 and in_step(fake_kb)
    assert [p.text for p in fake_kb.store.chunks_of(out[0].doc_id)] == ["money advice for families"]
    assert Searcher(fake_kb).search("money advice", mode="keyword").hits[0].source == "a"
    assert not Searcher(fake_kb).search("walking", mode="keyword").hits


def test_a_second_writer_fails_clearly(tmp_path, database_url):
    settings = Settings(data_dir=tmp_path / "d", model="fake", database_url=database_url)
    first = KnowledgeBase.open(settings, FakeEmbedder())
    second = KnowledgeBase.open(settings, FakeEmbedder())
    with first.writing():
        with pytest.raises(Busy, match="another process is writing"):
            with second.writing(wait=0.2):
                pass


@sqlite_only
def test_schema_is_migrated_and_wal(fake_kb):
    conn = sqlite3.connect(fake_kb.store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"documents", "chunks", "embeddings", "chunks_fts", "doc_bands"} <= tables


def test_an_older_database_keeps_its_curator_edits_through_the_upgrade(tmp_path):
    from kb.storage.sqlite_migrations import MIGRATIONS
    from kb.storage import Store

    path = tmp_path / "kb.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):  # the schema before edits were recorded
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    for doc_id, source in ((1, "/srv/a.md"), (2, "upload:ab12")):
        conn.execute("INSERT INTO documents (id, source, sha256, added_at, updated_at) VALUES (?, ?, 'x', 'now', 'now')",
                     (doc_id, source))
    conn.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES "
                 "('now', 'cur', 'edit', 'document 1', 'visibility=curators, original_title=Old, tags=[]')")
    conn.close()
    store = Store(path)
    first, second = store.get(1), store.get(2)
    assert sorted(first.edited) == ["original_title", "tags", "visibility"] and second.edited == []
    assert (first.source_sha, second.source_sha) == ("x", None)


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 101}, {"mode": "magic"}, {"offset": -1}])
def test_bad_search_parameters(fake_kb, kwargs):
    with pytest.raises(BadRequest):
        Searcher(fake_kb).search("anything", **kwargs)


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "AND", "-", ":", "a:b", "x" * 100_000, "\x00\x01",
                                   "🙂🙂", "שלום עולם", "((()))", "OR OR", "'; DROP TABLE documents; --"])
def test_hostile_queries_never_raise_database_errors(fake_kb, query):
    add(fake_kb, new_doc("a", ["ordinary text"]))
    for mode in ("dense", "keyword", "hybrid"):
        try:
            result = Searcher(fake_kb).search(query, mode=mode)
        except BadRequest as exc:  # only a query with nothing left to search may be refused
            assert str(exc) == "the query is empty" and not query.strip("\x00\x01")
            continue
        assert isinstance(result.hits, list)
    assert fake_kb.store.count() == 1


def test_searches_run_safely_while_the_index_changes(fake_kb):
    """Threads search the in-process index while a writer adds and removes documents."""
    import threading

    add(fake_kb, *[new_doc(f"base{i}", [f"base document {i} words"]) for i in range(20)])
    errors, stop = [], threading.Event()

    def reader():
        searcher = Searcher(fake_kb)
        while not stop.is_set():
            try:
                searcher.search("document words", k=5, mode="dense")
            except Exception as exc:  # any failure is the finding
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for round_ in range(15):
        out = add(fake_kb, *[new_doc(f"r{round_}-{i}", [f"round {round_} text {i}"]) for i in range(5)])
        fake_kb.remove(out[0].doc_id)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and in_step(fake_kb)


def test_keyword_search_finds_a_narrow_filters_matches_beyond_the_best_ranked(fake_kb):
    """FTS5 ranks its own top matches before filtering; when a filter admits none of them, the full
    filtered query still finds the documents it admits."""
    add(fake_kb, *[new_doc(f"a{n}", [f"garden garden garden number {n}"], site="Croydon") for n in range(30)],
        *[new_doc(f"b{n}", [f"garden, among many other words about walking groups and tea {n}"], site="Leeds")
          for n in range(3)])
    store = fake_kb.store
    everything = store.keyword_search(["garden"], Filters(), 4)
    assert {store.get(store.chunk_rows([i])[i].doc_id).site for i, _ in everything} == {"Croydon"}
    leeds = store.keyword_search(["garden"], Filters(site=["Leeds"]), 2)
    rows = store.chunk_rows([i for i, _ in leeds])
    assert len(leeds) == 2 and {rows[i].site for i, _ in leeds} == {"Leeds"}
    assert [s for _, s in leeds] == sorted((s for _, s in leeds), reverse=True)
    searcher = Searcher(fake_kb)  # the same answers when the admitted ids come from the searcher's cache
    for filters, limit in ((Filters(site=["Leeds"]), 2), (Filters(), 4), (Filters(site=["Newham"]), 3)):
        assert store.keyword_search(["garden"], filters, limit, searcher.admitted(filters)) == \
            store.keyword_search(["garden"], filters, limit)


def test_a_reader_never_sees_hidden_chunks_while_another_process_is_between_store_and_index(tmp_path):
    """A writer commits to SQLite before it saves the index; a reader searching in that gap has
    as many admitted chunks as indexed vectors, but not the same ones: it must still filter."""
    settings = Settings(data_dir=tmp_path / "d", model="fake")
    writer = KnowledgeBase.open(settings, FakeEmbedder())
    reader = KnowledgeBase.open(settings, FakeEmbedder())
    add(writer, new_doc("public", ["orchard apples harvest"], visibility="public"),
        new_doc("hidden", ["secret salary review board"], visibility="curators"))
    reader.refresh()
    searcher, public = Searcher(reader), Filters(visibility=("public",))
    seen = {}
    save = writer._save_index

    def save_after_a_search():
        seen["counts"] = (reader.index.count(), len(searcher.admitted(public)))
        seen["allowed"] = searcher.allowed_ids(public)
        result = searcher.search("secret salary review", filters=public, mode="dense")
        seen["hits"] = [h.source for h in result.hits + result.nearest]  # no match: the nearest, still filtered
        save()

    writer._save_index = save_after_a_search
    add(writer, new_doc("later", ["pears and plums"], visibility="public"))
    assert seen["counts"] == (2, 2)  # the old index: public + hidden; the store: public + later
    assert seen["allowed"] is not None  # a selector, though the counts were equal
    assert seen["hits"] == ["public"]
    writer.close()
    reader.close()



def test_a_model_change_embeds_again_on_every_backend(tmp_path, database_url):
    class OtherModel(FakeEmbedder):
        def encode(self, texts):
            return np.roll(super().encode(texts), 7, axis=1)  # different vectors, same dimension

    settings = Settings(data_dir=tmp_path / "d", model="fake", database_url=database_url)
    kb = KnowledgeBase.open(settings, FakeEmbedder())
    add(kb, new_doc("a", ["alpha words"]), new_doc("b", ["beta words"]))
    kb.close()
    other = KnowledgeBase.open(Settings(data_dir=tmp_path / "d", model="other", database_url=database_url), OtherModel())
    hit = Searcher(other).search("beta words", mode="dense").hits[0]
    assert hit.source == "b" and hit.score > 0.99  # the passage's vector is the new model's
    assert other.check()["in_step"]


def test_an_unreachable_database_is_a_clear_error_that_hides_the_password(tmp_path):
    from support.postgres import free_port

    from kb.errors import DatabaseUnavailable

    port = free_port()  # nothing listens there
    for url in (f"postgresql://kb:s3cret@127.0.0.1:{port}/kb", f"postgresql://kb@127.0.0.1:{port}/kb?password=s3cret"):
        with pytest.raises(DatabaseUnavailable, match="cannot reach the database") as caught:
            KnowledgeBase.open(Settings(data_dir=tmp_path / "d", model="fake", database_url=url), FakeEmbedder())
        assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_stats_count_documents_without_a_type_site_or_date(fake_kb):
    add(fake_kb, new_doc("a", ["volunteers in plymouth"], site="Plymouth", doc_type="learning-report", published="2021-11-26"),
        new_doc("b", ["an untyped note"], site="Plymouth"),
        new_doc("c", ["a loose page"], visibility="curators"))
    stats = fake_kb.stats()
    assert (stats["by_type"], stats["by_site"], stats["by_year"]) == ({"learning-report": 1}, {"Plymouth": 2}, {"2021": 1})
    assert stats["without"] == {"type": 2, "site": 1, "year": 2}
    assert fake_kb.stats(("public", "partners"))["without"] == {"type": 1, "site": 0, "year": 1}
