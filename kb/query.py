"""Query parsing: user text to search terms and a safe FTS5 expression. Pure functions.

Whatever the user types, the FTS5 expression only ever holds quoted word tokens joined by OR,
so FTS5 syntax (quotes, `*`, `NEAR(`, `AND`, `-`, `:`) in a query is read as plain words.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves get got did does
""".split())


def normalize(query: str) -> str:
    """Unicode-normalized, control characters dropped, whitespace collapsed, length capped."""
    query = unicodedata.normalize("NFKC", query or "")
    query = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in query)
    return " ".join(query.split())[:MAX_QUERY_CHARS].rstrip()


def terms(query: str) -> list[str]:
    """Distinct lower-cased word tokens, stopwords dropped unless nothing else is left."""
    tokens = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(normalize(query))))
    content = [t for t in tokens if t not in STOPWORDS]
    return (content or tokens)[:MAX_TERMS]


def fts_match(query: str) -> str | None:
    """An FTS5 MATCH expression for the query's terms, or None when it has no words at all."""
    words = terms(query)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)
