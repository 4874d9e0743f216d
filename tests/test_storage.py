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
