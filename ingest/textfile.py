"""Plain text: decoding (UTF-8, BOMs, cp1252 fallback) and paragraphs."""

from __future__ import annotations

import codecs
import re
import unicodedata

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

_BLANK = re.compile(r"\n[ \t]*\n+")


def decode(data: bytes) -> str:
    """Text from bytes: a BOM decides; else UTF-8; else cp1252 (latin-1 for its five gaps)."""
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    return clean(text)


def clean(text: str) -> str:
    """Normalized newlines; NUL and other control characters dropped; refuses binary data."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\t\f")
    if text and controls / len(text) > 0.05:
        raise LoadError("binary data, not text")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def paragraphs(text: str, page: int | None = None) -> list[Block]:
    return [Block(p.strip(), "para", 0, page) for p in _BLANK.split(text) if p.strip()]


def load_text(data: bytes, name: str) -> LoadedDocument:
    text = decode(data)
    blocks = paragraphs(text)
    if not blocks:
        raise LoadError("empty file: no text")
    first = blocks[0].text
    title = first if len(first) <= 150 and "\n" not in first else None
    return LoadedDocument(blocks=blocks, title=title, mime="text/plain")
