"""Property tests (hypothesis) for the chunker, snippets and query parsing, and a time-boxed fuzz
run of the loaders on mutated files.

KB_FUZZ_SECONDS sets the loader fuzz time box (default 8 s); KB_FUZZ_SEED its seed. Figures go to
artifacts/reliability/fuzz.json.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import time
import unicodedata
import zipfile
from collections import Counter
from html import unescape
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import ROOT, make_docx, make_pdf
from ingest import load
from kb.chunk import chunk_blocks, embed_text
from kb.errors import LoadError
from kb.models import Block, DocMeta, LoadedDocument, NewDocument
from kb.query import MAX_QUERY_CHARS, MAX_TERMS, fts_match, normalize, terms
from kb.snippet import make_snippet, stem

FUZZ_SECONDS = float(os.environ.get("KB_FUZZ_SECONDS", "8"))
FUZZ_SEED = int(os.environ.get("KB_FUZZ_SEED", "1"))
REPORTS = ROOT / "artifacts" / "reliability"

unicode_text = st.text(st.characters(codec="utf-8"), max_size=300)
fragments = st.sampled_from([
    "volunteers", "Partnership", "trust.", "e.g.", "co-operation", "£450,000", "naïve", "ﬁnance", "日本語の文",
    "🙂", "👩‍👩‍👧", "שלום", "مرحبا", "\u202e", "\u200b", "x" * 300, "0:0:0:0:0:", "—", "(", ")", "\"", "'", "&",
    "&amp;", "&lt;mark&gt;", "<", ">", "<mark>", "</mark>", "<script>alert(1)</script>", "\n", "\n\n", " ", "\t",
    "NEAR(", "AND", "OR", "NOT", "*", "-", ":", "^", "{", "}", "\x00", "\x1b",
])
fragment_text = st.lists(fragments, max_size=120).map(" ".join)
any_text = st.one_of(unicode_text, fragment_text)


# the chunker, with the real model's tokenizer ------------------------------------------------------

title_words = st.lists(st.sampled_from(["Leeds", "learning", "report", "phase", "2", "Café", "ﬁnal", "日本",
                                        "co-design", "(draft)", "🙂"]), max_size=24).map(" ".join)
blocks = st.lists(st.one_of(
    st.builds(Block, any_text, st.just("para")),
    st.builds(Block, any_text, st.just("heading"), st.integers(1, 6)),
), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks, st.integers(16, 254), st.integers(0, 7), title_words)
def test_chunks_fit_the_model_and_cover_the_text(model, blocks, max_tokens, overlap, title):
    """In the model's own tokens, prefix included, whatever the text, headings or limits (the
    title, at most 24 words, is assumed to fit in half a chunk; long heading paths are cut)."""
    assume(model.count_tokens(embed_text(title, "", "")) <= max_tokens // 2)
    overlap = min(overlap, max_tokens // 2 - 1)
    text, chunks = chunk_blocks(blocks, model.count_tokens, max_tokens, overlap, title)
    mask = [False] * len(text)
    for n, chunk in enumerate(chunks):
        assert chunk.ordinal == n
        assert text[chunk.char_start:chunk.char_end] == chunk.text
        assert chunk.tokens == model.count_tokens(embed_text(title, chunk.heading, chunk.text))
        assert chunk.tokens <= max_tokens
        mask[chunk.char_start:chunk.char_end] = [True] * (chunk.char_end - chunk.char_start)
    assert all(covered or ch.isspace() for covered, ch in zip(mask, text))


# snippets -------------------------------------------------------------------------------------------

class _Markup(HTMLParser):
    """Records what an HTML string really holds: tags (with nesting depth) and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.depth, self.max_depth, self.text, self.marked = [], 0, 0, [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)

    def handle_endtag(self, tag):
        self.tags.append(("/" + tag, []))
        self.depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self.depth:
            self.marked.append(data)


@settings(max_examples=300, deadline=None)
@given(any_text, any_text)
def test_snippets_are_well_formed_escaped_html(text, query):
    snippet = make_snippet(text, query)
    parsed = _Markup()
    parsed.feed(snippet)
    parsed.close()
    assert {tag for tag, _ in parsed.tags} <= {"mark", "/mark"} and all(not attrs for _, attrs in parsed.tags)
    assert parsed.max_depth <= 1 and parsed.depth == 0
    shown = "".join(parsed.text).removeprefix("… ").removesuffix(" …")
    assert shown in text or not text.strip()
    assert unescape(snippet.replace("<mark>", "").replace("</mark>", "")) == "".join(parsed.text)
    wanted = {stem(t) for t in terms(query)}
    assert all(stem(word) in wanted for word in parsed.marked)


# query parsing --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fts():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, title, heading, "
                 "tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t VALUES ('volunteers build trust in Leeds', 'Report', 'Findings')")
    yield conn
    conn.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(any_text, st.text(max_size=3000)))
def test_any_query_becomes_a_safe_fts_expression(fts, query):
    text = normalize(query)
    assert normalize(text) == text and len(text) <= MAX_QUERY_CHARS
    assert not any(unicodedata.category(ch)[0] == "C" for ch in text)
    words = terms(query)
    assert len(words) <= MAX_TERMS and len(set(words)) == len(words)
    assert all(w == w.lower() and w.isalnum() or w.replace("_", "").isalnum() for w in words)
    match = fts_match(query)
    assert (match is None) == (not words)
    if match is not None:
        fts.execute("SELECT rowid, bm25(t) FROM t WHERE t MATCH ? ORDER BY rank", (match,)).fetchall()


# loaders: a time-boxed mutation fuzz -----------------------------------------------------------------

def _seeds() -> dict[str, bytes]:
    return {
        "seed.pdf": make_pdf([[("h1", "Context"), ("p", "Plymouth partners met weekly.")],
                              [("h2", "Learning"), ("p", "Trust grew in small groups.")]], title="Report"),
        "seed.docx": make_docx([("h1", "Profile"), ("p", "Council and NHS."), ("h2", "Focus"), ("p", "Wellbeing.")],
                               title="Area profile"),
        "seed.html": b"<!doctype html><html><head><title>News</title><meta property='article:published_time' "
                     b"content='2021-01-14'><script>var x=1</script></head><body><nav>Home</nav><main><h1>Six "
                     b"places</h1><p>Up to <b>&pound;500,000</b> each.</p><ul><li>Coventry</li></ul><!-- c -->"
                     b"<table><tr><td>a</td><th>b</th></tr></table></main></body></html>",
        "seed.md": "---\ntitle: Overview\ndate: 2022-09-01\n---\n# Programme\n\nSee [the fund](http://x) for **details**."
                   "\n\nPhase 2\n-------\n```\ncode\n```\nUp to £450,000.\n".encode(),
        "seed.txt": "Café £450,000 ’quoted’\n\nSecond paragraph.\n".encode("cp1252"),
    }


def _mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    if data.startswith(b"PK") and rng.random() < 0.7:  # a Word file: mutate its XML, keep the zip valid
        source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
            for info in source.infolist():
                body = source.read(info)
                if info.filename.endswith(".xml") and rng.random() < 0.5:
                    body = _mutate(rng, body, seeds)
                out.writestr(info.filename, body)
        return target.getvalue()
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out) or 1)
        op = rng.randrange(6)
        if op == 0 and out:
            out[at] = rng.randrange(256)
        elif op == 1:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:
            del out[at:at + rng.randint(1, 64)]
        elif op == 3:
            del out[at:]
        elif op == 4 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start:start + rng.randint(1, 256)]
        else:
            other = rng.choice(seeds)
            start = rng.randrange(len(other))
            out[at:at] = other[start:start + rng.randint(1, 200)]
    return bytes(out)


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung


def _well_formed(doc: LoadedDocument) -> None:
    assert isinstance(doc, LoadedDocument) and doc.blocks
    for block in doc.blocks:
        assert isinstance(block.text, str) and block.kind in ("heading", "para")
        block.text.encode("utf-8")  # no lone surrogates: SQLite and the model must take it
        assert "\x00" not in block.text


def test_loaders_survive_mutated_files(fake_kb):
    """Each mutant either loads into well-formed blocks or is refused with a LoadError, in time;
    a sample of what loads is stored too (chunked, indexed, searchable)."""
    seeds = _seeds()
    rng = random.Random(FUZZ_SEED)
    outcomes: Counter = Counter()
    loaded: list[tuple[str, LoadedDocument]] = []
    slowest = 0.0
    previous = signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + FUZZ_SECONDS
    try:
        while time.monotonic() < deadline:
            name = rng.choice(sorted(seeds))
            data = _mutate(rng, seeds[name], list(seeds.values()))
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 20)
            try:
                doc = load(data, name, max_seconds=10)
            except LoadError:
                outcomes[f"{name}: refused"] += 1
                continue
            except _Hung:
                pytest.fail(f"{name} mutant hung: {data[:200]!r}")
            except Exception as exc:
                pytest.fail(f"{name} mutant raised {type(exc).__name__}: {exc}; input {data[:300]!r}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                slowest = max(slowest, time.monotonic() - started)
            _well_formed(doc)
            outcomes[f"{name}: loaded"] += 1
            if len(loaded) < 40 and rng.random() < 0.05:
                loaded.append((name, doc))
    finally:
        signal.signal(signal.SIGALRM, previous)
    with fake_kb.writing():
        stored = fake_kb.add_batch([NewDocument(f"fuzz-{i}", f"sha-{i}", doc, DocMeta())
                                    for i, (_, doc) in enumerate(loaded)])
    assert all(o.status == "added" for o in stored) and fake_kb.check()["in_step"]
    total = sum(outcomes.values())
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "fuzz.json").write_text(json.dumps({
        "seconds": FUZZ_SECONDS, "seed": FUZZ_SEED, "inputs": total, "crashes": 0, "hangs": 0,
        "slowest_seconds": round(slowest, 3), "stored_after_loading": len(stored), "by_outcome": dict(outcomes),
    }, indent=2))
    assert total >= 50 and all(outcomes[f"{name}: loaded"] + outcomes[f"{name}: refused"] for name in seeds)


tag_soup = st.lists(st.sampled_from([
    "<html>", "<body>", "<main>", "</main>", "<article>", "<div>", "</div>", "<p>", "</p>", "<h1>", "</h1>", "<h2>",
    "<li>", "<table><tr><td>", "</td>", "<script>", "</script>", "<style>", "<iframe>", "<!--", "-->", "<![CDATA[",
    "]]>", "<!doctype html>", "<![if x]>", "<?xml?>", "<meta property='og:title' content='T'>", "<title>",
    "</title>", "<time datetime='2021-02-30'>", "&#0;", "&#xD800;", "&#x110000;", "&amp", "&;", "<", ">", "</",
    "<a href=javascript:x>", "<p class='cookie share'>", "<div role=main>", "<div hidden>", "text", "more words",
    "\x00", "\r\n", "\u2028", "日本語",
]), max_size=80).map("".join)
markdown_soup = st.lists(st.sampled_from([
    "---\n", "title: T\n", "date: someday\n", "# ", "## ", "###### ", "####### ", "=====\n", "-----\n", "```\n",
    "~~~\n", "[link](", ")", "![img](x)", "**", "__", "*", "_", "`", "\n", "\n\n", "words here", " ", "\t", "\\",
    "<p>html</p>", "\x00", "\ufeff",
]), max_size=80).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(tag_soup.map(lambda t: (t, "x.html")), markdown_soup.map(lambda t: (t, "x.md")),
                 unicode_text.map(lambda t: (t, "x.txt"))))
def test_loaders_on_generated_markup(case):
    text, name = case
    try:
        doc = load(text.encode("utf-8", "surrogatepass"), name)
    except LoadError:
        return
    _well_formed(doc)
