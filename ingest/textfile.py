"""Plain text: decoding (UTF-8, UTF-16 and UTF-32 with or without BOMs, cp1252 fallback) and paragraphs."""

from __future__ import annotations

import codecs
import re
import unicodedata

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

_BLANK = re.compile(r"\n[ \t]*\n+")


def decode(data: bytes) -> str:
    """Text from bytes: a BOM decides; else UTF-32 or UTF-16 when the NUL bytes fall as they do in
    it; else UTF-8; else cp1252 (latin-1 for its five gaps). Control characters are dropped and
    binary data refused (`clean`)."""
    return clean(decode_only(data))


def decode_only(data: bytes) -> str:
    """`decode` without `clean`: for a reader that cleans only the part it keeps."""
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE starts both
        text = data.decode("utf-32", errors="replace")
    elif utf32 := _utf32_without_bom(data):
        text = data.decode(utf32, errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif utf16 := _utf16_without_bom(data):
        text = data.decode(utf16, errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    return text


def _utf32_without_bom(data: bytes) -> str | None:
    """"utf-32-le" or "utf-32-be" for UTF-32 without its byte order mark: in every four bytes the
    highest is always NUL, the next mostly (all text below U+10000), the lowest mostly not."""
    sample = data[:4096]
    quarter = len(sample) // 4
    if quarter < 2 or len(data) % 4:
        return None
    for order, (high, next_, low) in (("utf-32-le", (3, 2, 0)), ("utf-32-be", (0, 1, 3))):
        if (sample[high::4].count(0) == quarter and sample[next_::4].count(0) >= 0.9 * quarter
                and sample[low::4].count(0) <= 0.1 * quarter):
            return order
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for mostly-Latin UTF-16 that lacks its byte order mark."""
    sample = data[:4096]
    half = len(sample) // 2
    if half < 2 or len(data) % 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.5 * half and even <= 0.02 * half:
        return "utf-16-le"
    if even >= 0.5 * half and odd <= 0.02 * half:
        return "utf-16-be"
    return None


def clean(text: str) -> str:
    """Normalized newlines; NUL, other control characters and lone surrogates dropped; refuses
    binary data."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\t\f")
    if text and controls / len(text) > 0.05:
        raise LoadError("binary data, not text")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")


def paragraphs(text: str, page: int | None = None) -> list[Block]:
    """Paragraphs at blank lines; a line underlined with === or --- is a heading (as in setext)."""
    blocks = []
    for part in _BLANK.split(text):
        lines = part.strip().split("\n")
        if len(lines) >= 2 and _UNDERLINE.match(lines[1]) and len(lines[1].strip()) >= 3 and lines[0].strip():
            level = 1 if lines[1].strip()[0] == "=" else 2
            blocks.append(Block(" ".join(lines[0].split()), "heading", level, page))
            lines = lines[2:]
        body = "\n".join(lines).strip()
        if body:
            blocks.append(Block(body, "para", 0, page))
    return blocks


def load_text(data: bytes, name: str) -> LoadedDocument:
    text = decode(data)
    blocks = paragraphs(text)
    if not blocks:
        raise LoadError("empty file: no text")
    first = blocks[0].text
    title = first if len(first) <= 150 and "\n" not in first else None
    return LoadedDocument(blocks=blocks, title=title, mime="text/plain")
