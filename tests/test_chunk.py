"""Chunker properties: token bound, full coverage, headings kept, overlap only inside split paragraphs."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kb.chunk import chunk_blocks, embed_text
from kb.models import Block


def words(text: str) -> int:
    return len(text.split())


def covered(text: str, chunks) -> bool:
    mask = [False] * len(text)
    for c in chunks:
        for i in range(c.char_start, c.char_end):
            mask[i] = True
    return all(mask[i] or text[i].isspace() for i in range(len(text)))


word = st.text(alphabet="abcdefghij", min_size=1, max_size=9)
sentence = st.lists(word, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
paragraph = st.lists(sentence, min_size=1, max_size=12).map(" ".join)
block = st.one_of(
    paragraph.map(lambda t: Block(t, "para")),
    st.tuples(st.integers(1, 4), st.lists(word, min_size=1, max_size=6).map(" ".join)).map(
        lambda lv: Block(lv[1], "heading", lv[0])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(block, min_size=1, max_size=25), st.integers(24, 120), st.integers(0, 10))
def test_chunks_are_bounded_and_cover_the_text(blocks, max_tokens, overlap):
    text, chunks = chunk_blocks(blocks, words, max_tokens, overlap, title="A title")
    for chunk in chunks:
        assert chunk.tokens <= max_tokens
        assert words(embed_text("A title", chunk.heading, chunk.text)) == chunk.tokens
        assert text[chunk.char_start:chunk.char_end] == chunk.text
    assert covered(text, chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_headings_become_the_heading_path():
    blocks = [Block("Report", "heading", 1), Block("Intro text here.", "para"),
              Block("Findings", "heading", 2), Block("We learned a lot.", "para"),
              Block("Volunteers", "heading", 3), Block("Volunteers mattered.", "para"),
              Block("Next steps", "heading", 2), Block("More work.", "para")]
    _, chunks = chunk_blocks(blocks, words, 50, 5)
    paths = {c.text.split("\n\n")[-1]: c.heading for c in chunks}
    assert paths["Intro text here."] == "Report"
    assert paths["We learned a lot."] == "Report > Findings"
    assert paths["Volunteers mattered."] == "Report > Findings > Volunteers"
    assert paths["More work."] == "Report > Next steps"


def test_overlap_only_where_a_paragraph_was_split():
    long_para = " ".join(f"Sentence number {i} is here." for i in range(40))
    blocks = [Block("Short first paragraph.", "para"), Block(long_para, "para"), Block("Short last one.", "para")]
    text, chunks = chunk_blocks(blocks, words, 30, 8)
    spans = sorted((c.char_start, c.char_end) for c in chunks)
    overlaps = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
    assert overlaps, "a split paragraph should overlap a little"
    para_start = text.index(long_para)
    para_end = para_start + len(long_para)
    for a, b in overlaps:
        assert para_start <= b[0] < a[1] <= para_end


def test_a_word_longer_than_a_chunk_is_cut_by_characters():
    blocks = [Block("x" * 5000, "para")]

    def chars(t):
        return (len(t) + 9) // 10

    text, chunks = chunk_blocks(blocks, chars, 50, 0)
    assert all(c.tokens <= 50 for c in chunks)
    assert covered(text, chunks)


def test_heading_only_sections_are_carried_into_the_next_chunk():
    blocks = [Block("Part one", "heading", 1), Block("Chapter", "heading", 2), Block("Body text.", "para")]
    _, chunks = chunk_blocks(blocks, words, 50, 0)
    assert len(chunks) == 1
    assert re.search("Part one", chunks[0].text)


def test_a_heading_is_never_a_passage_on_its_own():
    long_para = " ".join(f"Sentence {i} about trust." for i in range(60))
    blocks = [Block("What we learned", "heading", 2), Block(long_para, "para")]
    _, chunks = chunk_blocks(blocks, words, 40, 5)
    assert chunks[0].text.startswith("What we learned\n\nSentence 0")
    assert all(c.text.strip() != "What we learned" for c in chunks)
    assert all(c.tokens <= 40 for c in chunks)


def test_a_passage_cites_the_page_its_text_is_on():
    blocks = [Block("Lizards bask in the sun.", page=1), Block("Gardens", "heading", 2, page=1),
              Block("Quokkas live on Rottnest.", page=2), Block("They smile a lot.", page=2)]
    _, chunks = chunk_blocks(blocks, words, max_tokens=200, overlap=0)
    assert [(c.page, c.text.split()[0]) for c in chunks] == [(1, "Lizards"), (2, "Gardens")]
    assert "Quokkas" in chunks[1].text and "They smile" in chunks[1].text  # same page: one chunk
