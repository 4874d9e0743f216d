"""Snippets: the best window of a chunk with the query's terms marked. Pure functions.

The output is HTML-safe: all text is escaped and the only markup added is `<mark>` (query terms)
and `<strong>` (the sentence that matches the query best, when asked for).
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape

from .query import terms

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light stemmer, enough to match "partnerships" to "partnership" when highlighting."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def make_snippet(text: str, query: str, width: int = 40, emphasise: bool = False) -> str:
    """Up to `width` words around the densest cluster of query terms, escaped, terms in <mark>;
    with `emphasise`, the sentence holding the most distinct query terms in <strong> too, when
    the window holds more than one sentence."""
    wanted = {stem(t) for t in terms(query)}
    words = list(_WORD.finditer(text))
    if not words:
        return escape(text[: width * 8])
    hits = [i for i, m in enumerate(words) if stem(m.group()) in wanted]
    start = 0
    if hits:
        best = max(hits, key=lambda i: sum(1 for j in hits if i <= j < i + width))
        start = max(0, min(best - width // 4, len(words) - width))
    end = min(len(words), start + width)
    lo = words[start].start() if start else 0
    hi = words[end - 1].end() if end < len(words) else len(text)
    body = emphasised(text[lo:hi], wanted) if emphasise else highlight(text[lo:hi], wanted)
    return ("… " if lo else "") + body + (" …" if hi < len(text) else "")


def emphasised(text: str, wanted: set[str]) -> str:
    """`text` highlighted, its best-matching sentence (most distinct terms, the first on a tie) in <strong>."""
    bounds = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    found = [len({stem(m.group()) for m in _WORD.finditer(p)} & wanted) for p in pieces]
    if len(pieces) < 2 or not max(found):
        return highlight(text, wanted)
    best = found.index(max(found))
    out = []
    for n, piece in enumerate(pieces):
        if n == best:
            kept = piece.rstrip()
            out.append(f"<strong>{highlight(kept, wanted)}</strong>{piece[len(kept):]}")
        else:
            out.append(highlight(piece, wanted))
    return "".join(out)


def highlight(text: str, wanted: set[str]) -> str:
    out, pos = [], 0
    for m in _WORD.finditer(text):
        if stem(m.group()) in wanted:
            out.append(escape(text[pos:m.start()]))
            out.append(f"<mark>{escape(m.group())}</mark>")
            pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)
