"""The storage layer itself: migrations reach Alembic's head on both backends, and PostgreSQL's
keyword ranking is BM25 as SQLite's FTS5 computes it."""

from __future__ import annotations

import pytest
from conftest import FakeEmbedder
from test_collection import add, new_doc

from kb.collection import KnowledgeBase
from kb.models import Filters
from kb.settings import Settings
from kb.storage.migrate import HEAD, SCRIPTS, current


def test_head_names_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_every_backend_opens_at_the_head(fake_kb):
    with fake_kb.store.db.read() as conn:
        assert current(conn) == HEAD


PASSAGES = [
    ["walking groups meet in the park every week"],
    ["the community garden grows food and the garden hosts walking groups"],
    ["money advice for families, with walking routes to the advice centre and more words besides"],
    ["a garden", "a second paragraph about something else entirely, to make the chunk long and unlike the rest"],
    ["peer support for carers in the evening"],
]


def test_postgresql_ranks_keywords_by_bm25_as_fts5_does(tmp_path, kb_database):
    def scores(database_url: str) -> dict[str, list[tuple[str, float]]]:
        kb = KnowledgeBase.open(Settings(data_dir=tmp_path / (database_url and "pg" or "lite"), model="fake",
                                         database_url=database_url), FakeEmbedder())
        add(kb, *[new_doc(f"d{n}", text, title=f"Note {n}") for n, text in enumerate(PASSAGES)])
        out = {}
        for words in (["garden"], ["walking", "groups"], ["advice", "walking"], ["carers", "garden", "park"]):
            found = kb.store.keyword_search(words, Filters(), 10)
            out[" ".join(words)] = [(kb.store.get(kb.store.chunk_rows([i])[i].doc_id).source, s) for i, s in found]
        kb.close()
        return out

    lite, pg = scores(""), scores(kb_database)
    for query in lite:
        assert [source for source, _ in pg[query]] == [source for source, _ in lite[query]], query
        for (_, want), (_, got) in zip(lite[query], pg[query]):
            assert got == pytest.approx(want, rel=0.02), query


def _postings(kb) -> list[tuple]:
    from sqlalchemy import text

    from kb.storage.keyword import ALL_POSTINGS

    with kb.store.db.read() as conn:
        kept = conn.execute(text("SELECT term, impact, chunk_id FROM term_postings ORDER BY 1, 3")).all()
        fresh = conn.execute(text(f"{ALL_POSTINGS} ORDER BY 1, 3")).all()
    return kept, fresh


def test_postgresql_keyword_search_stops_early_with_the_full_ranking(tmp_path, kb_database, monkeypatch):
    """The threshold algorithm over impact-ordered postings returns what scoring every match
    returns, filters included, and most queries never run the full query."""
    import random

    from sqlalchemy import event

    from kb.storage import keyword

    rng = random.Random(7)
    words = [f"w{n}" for n in range(60)]
    weights = [1 / (n + 1) for n in range(60)]  # Zipf-like: w0 is in most chunks, w59 in few
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "pg", model="fake", database_url=kb_database), FakeEmbedder())
    docs = [new_doc(f"d{n}", [" ".join(rng.choices(words, weights, k=rng.randint(5, 40)))],
                    title=" ".join(rng.choices(words, weights, k=3)), site=("Leeds", "Newham")[n % 2])
            for n in range(400)]
    add(kb, *docs)
    kept, fresh = _postings(kb)
    assert kept == fresh and len(kept) > 4000

    statements = []
    event.listen(kb.store.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    queries = [rng.sample(words[:30], rng.randint(1, 5)) for _ in range(40)]
    early, overlap = [], []
    for filters in (Filters(), Filters(site=["Newham"])):
        for limit in (3, 10):
            for query in queries:
                with monkeypatch.context() as patch:
                    patch.setattr(keyword, "POSTINGS_DEPTH", 10 ** 6)  # every posting read: every match scored
                    want = kb.store.keyword_search(query, filters, limit)
                    every = dict(kb.store.keyword_search(query, filters, 1000))
                statements.clear()
                got = kb.store.keyword_search(query, filters, limit)
                early.append(not any("@@" in s for s in statements))
                assert [i for i, _ in got] == [i for i, _ in want], (query, filters, limit)
                assert [s for _, s in got] == pytest.approx([s for _, s in want])
                rough = kb.store.keyword_search(query, filters, limit, approximate=True)
                assert [s for _, s in rough] == sorted((s for _, s in rough), reverse=True)
                assert [s for _, s in rough] == pytest.approx([every[i] for i, _ in rough])  # exact scores
                overlap.append(len({i for i, _ in rough} & {i for i, _ in want}) / len(want))
    assert 0.3 * len(early) < sum(early) < len(early)  # some stop early, some need the full query
    assert sum(overlap) / len(overlap) > 0.75  # a harsh case: 60 words, 3 results; see docs/benchmarks.md


def test_postgresql_postings_follow_removals_retitles_and_a_drifting_average(tmp_path, kb_database):
    from sqlalchemy import text

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "pg", model="fake", database_url=kb_database), FakeEmbedder())
    add(kb, *[new_doc(f"d{n}", text, title=f"Note {n}") for n, text in enumerate(PASSAGES)])
    gone = set(kb.store.chunk_ids(doc_id=kb.store.find("d1").id).tolist())
    kb.remove(kb.store.find("d1").id)
    kb.update(kb.store.find("d2").id, {"title": "Orchard notes"})
    kept, fresh = _postings(kb)
    assert kept == fresh and not gone & {i for *_, i in kept}
    assert {kb.store.chunk_rows([i])[i].source for term, _, i in kept if term == "orchard"} == {"d2"}
    with kb.store.transaction(bump=None) as conn:  # as if the first chunks had been far shorter than the rest
        conn.execute(text("UPDATE meta SET value = '1.5' WHERE key = 'keyword_ref_avgdl'"))
    add(kb, new_doc("long", ["garden " * 30 + "walking groups"], title="Long"))
    kept, fresh = _postings(kb)
    assert kept == fresh
    with kb.store.db.read() as conn:
        assert float(conn.execute(text("SELECT value FROM meta WHERE key = 'keyword_ref_avgdl'")).scalar()) > 3


def test_a_postgresql_collection_from_before_the_postings_is_upgraded_in_place(tmp_path, postgres_url):
    """A database at revision 0002 (keyword search scored from tsvectors) with chunks in it: opening
    it adds the arrays and postings from what it holds, and keyword search ranks as before."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from types import SimpleNamespace

    from kb.storage import Store

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(text("INSERT INTO documents (id, source, sha256, title, added_at, updated_at) "
                          "VALUES (1, 'a', 'x', 'Walking', 'now', 'now'), (2, 'b', 'y', 'Money', 'now', 'now')"))
        for chunk_id, doc_id, body in ((1, 1, "walking groups meet in the park, walking every week"),
                                       (2, 2, "money advice for families who walk to the advice centre")):
            conn.execute(text("INSERT INTO chunks (id, doc_id, ordinal, text, heading, char_start, char_end, tokens, "
                              "text_hash) VALUES (:i, :d, 0, :t, '', 0, 1, 10, :i)"), {"i": chunk_id, "d": doc_id, "t": body})
        conn.execute(text(  # the keyword index, as kb filled it at 0002
            "INSERT INTO chunk_search (chunk_id, terms, length) SELECT c.id, setweight(to_tsvector('english', c.text), 'A') "
            "|| setweight(to_tsvector('english', d.title), 'C'), 12 FROM chunks c JOIN documents d ON d.id = c.doc_id"))
        conn.execute(text("INSERT INTO term_stats (term, df) SELECT lexeme, count(*) FROM chunk_search, "
                          "unnest(tsvector_to_array(terms)) AS lexeme GROUP BY lexeme"))
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'keyword_chunks'"))
        conn.execute(text("UPDATE meta SET value = '24' WHERE key = 'keyword_length'"))
        before = dict(conn.execute(text(
            "SELECT chunk_id, kb_bm25(terms, length, ARRAY['walk', 'advic'], ARRAY[0.5, 1.5]::float8[], 12) "
            "FROM chunk_search")).all())
    engine.dispose()
    store = Store(postgres_url)
    with store.db.read() as conn:
        assert current(conn) == HEAD
        after = dict(conn.execute(text(
            "SELECT chunk_id, kb_score(lexemes, tfs, length, ARRAY['walk', 'advic'], ARRAY[0.5, 1.5]::float8[], 12) "
            "FROM chunk_search")).all())
    assert after == pytest.approx(before) and after[1] > 0 and after[2] > 0
    kept, fresh = _postings(SimpleNamespace(store=store))
    assert kept == fresh and {i for *_, i in kept} == {1, 2}
    assert [i for i, _ in store.keyword_search(["walking"], Filters(), 5)] == [1, 2]
    with store.db.read() as conn:  # 0004: both public, so both counted at level 0
        assert conn.execute(text("SELECT df FROM term_stats WHERE term = 'walk' ORDER BY level")).scalars().all() == [2]
        assert dict(conn.execute(text("SELECT key, value FROM meta WHERE key LIKE 'keyword_chunks_%'")).all()) == \
            {"keyword_chunks_0": "2", "keyword_chunks_1": "0", "keyword_chunks_2": "0"}
    store.close()


def test_a_sqlite_collection_from_before_the_reader_indexes_is_upgraded_in_place(tmp_path, monkeypatch):
    """A data folder at revision 0003 (one FTS5 index for every reader): revision 0004 builds the
    visitors' and partners' indexes from what it holds, and each reader's scores come out as in a
    collection made afresh."""
    import sqlite3

    from alembic import command

    from test_collection import PARTNER, PUBLIC

    settings = Settings(data_dir=tmp_path / "data", model="fake")
    kb = KnowledgeBase.open(settings, FakeEmbedder())
    out = add(kb, *[new_doc(f"d{n}", text, visibility=("public", "partners", "curators")[n % 3])
                    for n, text in enumerate(PASSAGES * 3)])
    kb.set_status(out[0].doc_id, "retired")
    want = [kb.store.keyword_search(["garden", "walking"], f, 10) for f in (PUBLIC, PARTNER, Filters())]
    kb.close()
    with sqlite3.connect(settings.data_dir / "kb.sqlite3") as raw:  # back to what 0003 had: one index
        raw.executescript("DROP TABLE chunks_fts_public; DROP TABLE chunks_fts_partners; DROP TABLE keyword_levels; "
                          "UPDATE alembic_version SET version_num = '0003';")
    with monkeypatch.context() as patch:  # 0004 alone: later revisions' tables are there already
        upgrade = command.upgrade
        patch.setattr(command, "upgrade", lambda config, revision: upgrade(config, "0004"))
        kb = KnowledgeBase.open(settings, FakeEmbedder())
    with kb.store.db.read() as conn:
        assert current(conn) == "0004"
    assert [kb.store.keyword_search(["garden", "walking"], f, 10) for f in (PUBLIC, PARTNER, Filters())] == want
    assert want[0] != want[1] != want[2]
    kb.close()
