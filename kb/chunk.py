"""Structure-aware chunking: split at headings, then paragraphs, then sentences, then words.

Pure functions over blocks. Chunks are bounded in the model's own tokens (a `count_tokens`
callable), the embedded prefix (title and heading path) included; overlap appears only where a
paragraph had to be split; together the chunks' character spans cover every non-blank character
of the document text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .models import Block, Chunk

SEPARATOR = "\n\n"
HEADING_JOIN = " > "
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"'”’)\]]*\s+")
_WORD = re.compile(r"\S+")

Counter = Callable[[str], int]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    page: int | None
    tokens: int


def document_text(blocks: Sequence[Block]) -> tuple[str, list[tuple[int, int]]]:
    """The document's full text (blocks joined by blank lines) and each block's span in it."""
    spans, pos, parts = [], 0, []
    for i, block in enumerate(blocks):
        if i:
            pos += len(SEPARATOR)
        spans.append((pos, pos + len(block.text)))
        parts.append(block.text)
        pos += len(block.text)
    return SEPARATOR.join(parts), spans


def _same(a: str, b: str) -> bool:
    return re.sub(r"[\W_]+", "", a.lower()) == re.sub(r"[\W_]+", "", b.lower())


def embed_text(title: str, heading: str, text: str) -> str:
    """The text the model sees for a chunk: title and heading path give it context (a top heading
    that only repeats the title is left out, so the prefix does not crowd out the text)."""
    title = " ".join((title or "").split()[:24])
    path = heading.split(HEADING_JOIN) if heading else []
    if path and title and _same(path[0], title):
        path = path[1:]
    prefix = HEADING_JOIN.join(p for p in (title, *path) if p)
    return f"{prefix}\n{text}" if prefix else text


def chunk_blocks(
    blocks: Sequence[Block],
    count_tokens: Counter,
    max_tokens: int = 200,
    overlap: int = 40,
    title: str = "",
) -> tuple[str, list[Chunk]]:
    """Split a document into chunks; returns the document text and the chunks over it."""
    text, spans = document_text(blocks)
    chunks: list[Chunk] = []
    stack: list[tuple[int, str]] = []
    section: list[_Unit] = []
    carried: list[_Unit] = []  # headings of sections that had no text of their own
    heading = ""

    def flush_section() -> None:
        nonlocal carried
        if not section:
            return
        if all(blocks_kind[u.start] == "heading" for u in section):
            carried = carried + section
        else:
            _pack_section(carried + section, heading)
            carried = []
        section.clear()

    def _pack_section(units: list[_Unit], path: str) -> None:
        path = _fit_path(path, title, count_tokens, max_tokens // 2)
        budget = max(8, max_tokens - count_tokens(embed_text(title, path, "")) - 1)
        current: list[_Unit] = []
        used = 0
        for unit in units:
            if unit.tokens > budget:
                lead = current if current and all(blocks_kind[u.start] == "heading" for u in current) else []
                if current and (not lead or budget - used < 8):
                    emit(current, path)
                    lead = []
                current, used = [], 0
                room = budget - sum(u.tokens for u in lead)
                for n, piece in enumerate(_split_long(text, unit, count_tokens, room, overlap)):
                    emit(lead + piece if n == 0 else piece, path)  # a heading never stands alone
            elif used + unit.tokens > budget or _new_page(current, unit, blocks_kind):
                emit(current, path)
                current, used = [unit], unit.tokens
            else:
                current.append(unit)
                used += unit.tokens
        if current:
            emit(current, path)

    def emit(units: list[_Unit], path: str) -> None:
        start, end = units[0].start, units[-1].end
        body = text[start:end]
        page = next((u.page for u in units if blocks_kind.get(u.start) != "heading"), units[0].page)
        chunks.append(Chunk(
            ordinal=len(chunks), text=body, heading=path, page=page,
            char_start=start, char_end=end, tokens=count_tokens(embed_text(title, path, body)),
        ))

    blocks_kind: dict[int, str] = {}
    for block, (start, end) in zip(blocks, spans):
        if not block.text.strip():
            continue
        blocks_kind[start] = block.kind
        unit = _Unit(start, end, block.page, count_tokens(block.text))
        if block.kind == "heading":
            flush_section()
            level = max(1, block.level or 1)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(block.text.split())))
            heading = HEADING_JOIN.join(h for _, h in stack)
        section.append(unit)
    flush_section()
    if carried:  # trailing headings with no text after them
        _pack_section(carried, heading)
    return text, chunks


def _new_page(current: list[_Unit], unit: _Unit, kinds: dict[int, str]) -> bool:
    """A chunk ends at a page break, so that a passage cites the page its text is on (a heading
    at the foot of a page still goes with the text after it)."""
    return (bool(current) and unit.page is not None and current[-1].page is not None
            and unit.page != current[-1].page and any(kinds[u.start] != "heading" for u in current))


def _fit_path(path: str, title: str, count: Counter, limit: int) -> str:
    """The heading path, shortened when title and path would take more than `limit` tokens (a
    paragraph styled as a heading, say): outer levels go first, then the last words."""
    if count(embed_text(title, path, "")) <= limit:
        return path
    parts = path.split(HEADING_JOIN)
    while len(parts) > 1 and count(embed_text(title, HEADING_JOIN.join(parts), "")) > limit:
        parts.pop(0)
    words = HEADING_JOIN.join(parts).split()
    low, high = 0, len(words)  # the most words that fit
    while low < high:
        middle = (low + high + 1) // 2
        if count(embed_text(title, " ".join(words[:middle]), "")) <= limit:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def _split_long(text: str, unit: _Unit, count: Counter, budget: int, overlap: int) -> list[list[_Unit]]:
    """Split one over-long paragraph into windows of sentences (or words), overlapping a little."""
    pieces = []
    for s, e in _sentences(text, unit.start, unit.end):
        tokens = count(text[s:e])
        if tokens <= budget:
            pieces.append(_Unit(s, e, unit.page, tokens))
        else:
            pieces.extend(_words(text, s, e, unit.page, count, budget))
    windows, i = [], 0
    while i < len(pieces):
        j, used = i, 0
        while j < len(pieces) and used + pieces[j].tokens <= budget:
            used += pieces[j].tokens
            j += 1
        j = max(j, i + 1)
        windows.append(pieces[i:j])
        if j >= len(pieces):
            break
        k, back = j, 0
        while k - 1 > i and back + pieces[k - 1].tokens <= overlap:
            k -= 1
            back += pieces[k].tokens
        i = k
    return windows


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out, pos = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.start() > pos:
            out.append((pos, m.start()))
        pos = m.end()
    if pos < end:
        out.append((pos, end))
    return out


def _words(text: str, start: int, end: int, page, count: Counter, budget: int) -> list[_Unit]:
    out = []
    for m in _WORD.finditer(text, start, end):
        tokens = count(m.group())
        if tokens <= budget:
            out.append(_Unit(m.start(), m.end(), page, tokens))
            continue
        pos = m.start()  # a "word" too long for a chunk: cut it by characters
        while pos < m.end():
            size = min(m.end() - pos, budget * 2)
            while size > 1 and count(text[pos:pos + size]) > budget:
                size //= 2
            out.append(_Unit(pos, pos + size, page, count(text[pos:pos + size])))
            pos += size
    return out
