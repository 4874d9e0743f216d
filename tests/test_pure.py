"""Pure helpers: query parsing, fusion, snippets, near-duplicate signatures, dates, settings."""

from __future__ import annotations

import html

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kb import dedup, fusion
from kb.errors import ConfigError
from kb.models import ChunkRow
from kb.query import fts_match, normalize, terms
from kb.settings import Settings
from kb.snippet import make_snippet
from ingest.dates import normalize_date


@pytest.mark.parametrize("query, expected", [
    ("How much did phase 2 sites get?", '"much" OR "phase" OR "2" OR "sites"'),
    ('"unbalanced AND NEAR( -x:*', '"unbalanced" OR "near" OR "x"'),
    ("the and of", '"the" OR "and" OR "of"'),
    ("!!! ??? ...", None),
    ("", None),
])
def test_fts_match_quotes_every_term(query, expected):
    assert fts_match(query) == expected


def test_normalize_drops_controls_and_caps_length():
    assert normalize("a\x00b\u202ec  d") == "a b c d"
    assert len(normalize("x" * 100_000)) == 1000
    assert terms("Volunteers VOLUNTEERS volunteers") == ["volunteers"]


def test_rrf_and_convex_fusion():
    dense = [(1, 0.9), (2, 0.8), (3, 0.1)]
    keyword = [(3, 12.0), (2, 6.0)]
    assert [i for i, _ in fusion.rrf([dense, [(2, 6.0), (3, 1.0)]])] == [2, 3, 1]
    fused = dict(fusion.convex(dense, keyword, 0.5))
    assert fused[2] == pytest.approx(0.5 * 0.875 + 0.5 * 0.0)
    assert fused[3] == pytest.approx(0.5)
    assert fusion.convex([], [], 0.5) == []


def test_snippet_marks_terms_and_escapes_html():
    text = "Partnerships <script>alert(1)</script> in Newham & Leeds share learning about partnership work."
    snippet = make_snippet(text, "partnership learning")
    assert "<script>" not in snippet
    assert "&lt;script&gt;" in snippet
    assert "<mark>Partnerships</mark>" in snippet and "<mark>learning</mark>" in snippet


def test_snippet_emphasises_the_sentence_that_matches_best():
    text = "Volunteers met weekly. The peer support group for carers grew in Leeds. Funding ended in 2022."
    snippet = make_snippet(text, "peer support for carers", emphasise=True)
    assert "<strong>The <mark>peer</mark> <mark>support</mark> group for <mark>carers</mark> grew in Leeds.</strong> " \
        "Funding" in snippet
    assert "<strong>" not in make_snippet("Only one sentence about carers.", "carers", emphasise=True)
    assert "<strong>" not in make_snippet(text, "peer support for carers")


@given(st.text(max_size=300), st.text(max_size=40), st.booleans())
def test_snippet_is_always_well_formed(text, query, emphasise):
    snippet = make_snippet(text, query, emphasise=emphasise)
    assert snippet.count("<strong>") == snippet.count("</strong>") <= 1
    stripped = snippet.replace("<mark>", "").replace("</mark>", "").replace("<strong>", "").replace("</strong>", "")
    assert "<" not in stripped and ">" not in stripped
    assert snippet.count("<mark>") == snippet.count("</mark>")
    assert html.unescape(stripped).replace("… ", "").replace(" …", "") in text or not text.strip()


def test_near_duplicate_signatures():
    base = " ".join(f"word{i} filler text number {i}" for i in range(60))
    edited = base.replace("word7 ", "changed ")
    other = " ".join(f"different{i} content here {i}" for i in range(60))
    a, b, c = dedup.signature(base), dedup.signature(edited), dedup.signature(other)
    assert dedup.similarity(a, b) > 0.8
    assert dedup.similarity(a, c) < 0.1
    assert set(dedup.band_keys(a)) & set(dedup.band_keys(b))
    assert dedup.signature("too short") is None


@pytest.mark.parametrize("raw, expected", [
    ("2021-01-14", "2021-01-14"), ("2021-01-14T09:00:00Z", "2021-01-14"), ("2020-1", "2020-01"),
    ("14 January 2021", "2021-01-14"), ("24 Jan 2020", "2020-01-24"), ("2021-02-30", None), ("soon", None),
])
def test_dates(raw, expected):
    assert normalize_date(raw) == expected


def test_settings_from_env_and_overrides(tmp_path):
    s = Settings.from_env({"KB_DATA": str(tmp_path), "KB_CHUNK_TOKENS": "180"}, model="x")
    assert s.data_dir == tmp_path and s.chunk_tokens == 180 and s.model == "x"
    with pytest.raises(ConfigError):
        Settings.from_env({"KB_INDEX": "annoy"})
    with pytest.raises(ConfigError):
        Settings.from_env({"KB_CHUNK_TOKENS": "many"})


def _row(chunk_id: int, doc_id: int, text: str, title: str, site: str = "") -> ChunkRow:
    return ChunkRow(chunk_id, doc_id, 0, text, "", None, 0, len(text), title, "", site, None, None, [], None,
                    "public", "active")


def _reference_fold(ranked):
    """Folding by its definition, pair by pair: a hit joins the kept hit of another document it
    overlaps most (Jaccard of word 3-shingles ≥ 0.6), the better-ranked on a tie."""
    kept = []
    for row, score in ranked:
        best, best_common = None, -1
        mine = dedup.word_triples(row.text)
        for n, (other, _, _) in enumerate(kept):
            theirs = dedup.word_triples(other.text)
            common = len(mine & theirs)
            union = len(mine | theirs)
            if other.doc_id != row.doc_id and union and common / union >= 0.6 and common > best_common:
                best, best_common = n, common
        if best is None:
            kept.append((row, score, []))
        elif all(a["doc_id"] != row.doc_id for a in kept[best][2]):
            kept[best][2].append({"doc_id": row.doc_id, "title": row.title, "site": row.site,
                                  "source": row.source})
    return kept


WORDS = st.sampled_from(["care", "walk", "group", "leeds", "health", "peer", "support", "garden"])


@given(st.lists(st.tuples(st.integers(0, 3), st.lists(WORDS, min_size=0, max_size=12)), max_size=25))
def test_fold_matches_its_pairwise_definition(items):
    from kb.search import fold

    ranked = [(_row(n, doc, " ".join(words), f"t{doc}"), 1.0 - n / 100) for n, (doc, words) in enumerate(items)]
    got = [(row.id, [a["doc_id"] for a in also]) for row, _, also in fold(ranked)]
    want = [(row.id, [a["doc_id"] for a in also]) for row, _, also in _reference_fold(ranked)]
    assert got == want


def test_fold_joins_a_passage_published_twice_and_keeps_one_documents_own_repeats():
    from kb.search import fold

    text = "Peer supporters in Leeds met weekly with residents to plan walks and shared meals in the park"
    rows = [_row(i, doc, body, f"doc {doc}", "Leeds") for i, doc, body in (
        (1, 10, text), (2, 11, text + " again"), (3, 10, text), (4, 12, "Something else entirely"))]
    kept = fold([(row, 1.0) for row in rows])
    assert [row.id for row, _, _ in kept] == [1, 3, 4]  # the same document's repeat stays a hit
    assert [a["doc_id"] for a in kept[0][2]] == [11]


@given(st.text(max_size=80))
def test_query_time_shingles_match_the_stored_definition(text):
    assert dedup.word_triples(text) == {tuple(g.split(" ")) for g in dedup.shingles(text, 3)}


@given(st.text(max_size=80), st.text(max_size=80))
def test_shingle_hashes_count_what_the_shingle_sets_share(a, b):
    ha, hb = dedup.triple_hashes(a), dedup.triple_hashes(b)
    assert len(ha) == len(dedup.word_triples(a)) and list(ha) == sorted(ha)
    assert len(np.intersect1d(ha, hb)) == len(dedup.word_triples(a) & dedup.word_triples(b))


@given(st.lists(st.text(max_size=60), max_size=6))
def test_shingle_hashes_of_many_texts_are_each_texts_own(texts):
    assert [list(h) for h in dedup.triple_hashes_many(texts)] == [list(dedup.triple_hashes(t)) for t in texts]
