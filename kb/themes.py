"""Themes across the collection: k-means over chunk embeddings (seeded, so reproducible), each
theme labelled by its distinctive terms (class-based TF-IDF). The labelling is a pure function.

A reader sees each theme labelled from the passages they may see (computed when asked, cached
until the store or the themes change), so a theme's name never carries words from documents that
are hidden from them or retired since the themes were built.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np

from .collection import KnowledgeBase
from .errors import BadRequest
from .models import Filters
from .query import STOPWORDS
from .store import filter_sql

SEED = 20200124
NO_SITE = "(no site)"  # the heat map's column for documents without a site
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
EXTRA_STOPWORDS = frozenset("""also said says will would could one two three may might many much made make
like well new used use using within across around per via yet still often including however including
""".split())


@dataclass
class Theme:
    id: int
    label: str
    terms: list[str]
    size: int


def tokens(text: str) -> list[str]:
    return [w.strip("'-") for w in _WORD.findall(text.lower())
            if w not in STOPWORDS and w not in EXTRA_STOPWORDS and len(w.strip("'-")) > 2]


def ctfidf_terms(groups: dict[int, list[str]], top: int = 6) -> dict[int, list[str]]:
    """Class-based TF-IDF: each group's texts as one document; terms frequent in a group and rare
    across groups describe it best. Pure."""
    counts = {g: Counter(t for text in texts for t in tokens(text)) for g, texts in groups.items()}
    total_by_term = Counter()
    for c in counts.values():
        total_by_term.update(c)
    average = sum(total_by_term.values()) / max(1, len(counts))
    out = {}
    for group, c in counts.items():
        size = sum(c.values()) or 1
        scored = {t: (n / size) * math.log(1 + average / total_by_term[t]) for t, n in c.items() if n >= 2}
        out[group] = [t for t, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    return out


def theme_count(chunks: int) -> int:
    return max(2, min(30, round(math.sqrt(chunks / 2))))


def build(kb: KnowledgeBase, k: int | None = None) -> list[Theme]:
    """Cluster every active passage and store the themes; returns them."""
    if k is not None and k < 2:
        raise BadRequest("the number of themes must be at least 2")
    rows = kb.store.conn.execute(
        "SELECT c.id, c.text, c.heading, d.title, d.visibility FROM chunks c JOIN documents d "
        "ON d.id = c.doc_id WHERE d.status = 'active' ORDER BY c.id").fetchall()
    generation = kb.store.generation()
    if len(rows) < 4:
        _store(kb, [], {}, generation)
        return []
    ids = np.asarray([r["id"] for r in rows], dtype=np.int64)
    vectors = kb.index.vectors(ids)
    k = min(k or theme_count(len(rows)), len(rows) // 2)
    kmeans = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=SEED, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(vectors)
    scores, labels = kmeans.index.search(vectors, 1)  # spherical k-means: inner products
    groups: dict[int, list[str]] = {}
    for row, label in zip(rows, labels[:, 0]):
        groups.setdefault(int(label), []).append(f"{row['heading']} {row['text']}")
    terms = ctfidf_terms(groups)
    themes = [Theme(g + 1, ", ".join(terms[g][:3]), terms[g], len(groups[g])) for g in sorted(groups)]
    assignments = {int(i): (int(l) + 1, float(s)) for i, l, s in zip(ids, labels[:, 0], scores[:, 0])}
    _store(kb, themes, assignments, generation)
    return themes


def _store(kb, themes, assignments, generation) -> None:
    """Replace the stored themes; the label columns hold the all-passages view (`kb themes`)."""
    with kb.store.transaction(bump=None) as conn:
        conn.execute("DELETE FROM chunk_themes")
        conn.execute("DELETE FROM themes")
        conn.executemany("INSERT INTO themes (id, label, terms, size) VALUES (?, ?, ?, ?)",
                         [(t.id, t.label, json.dumps(t.terms), t.size) for t in themes])
        conn.executemany("INSERT INTO chunk_themes (chunk_id, theme_id, score) VALUES (?, ?, ?)",
                         [(c, t, d) for c, (t, d) in assignments.items()])
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('themes_generation', ?)", (str(generation),))
        built = conn.execute("SELECT value FROM meta WHERE key = 'themes_built'").fetchone()
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('themes_built', ?)",
                     (str(int(built[0]) + 1 if built else 1),))


def stale(kb: KnowledgeBase) -> bool:
    """True when documents changed since the themes were built (ingest marks them stale this way)."""
    row = kb.store.conn.execute("SELECT value FROM meta WHERE key = 'themes_generation'").fetchone()
    return row is None or int(row[0]) != kb.store.generation()


@dataclass
class ThemeView:
    """A theme as one reader may see it: counts and label from the documents visible to them."""

    id: int
    label: str
    terms: list[str]
    passages: int
    documents: int
    sites: dict[str, int]


_TERMS: OrderedDict[tuple, dict[int, list[str]]] = OrderedDict()
_TERMS_LOCK = threading.Lock()  # held while labels are computed: others asking meanwhile wait for them


def visible_terms(kb: KnowledgeBase, visibility) -> dict[int, list[str]]:
    """Each theme's distinctive terms among the active passages the reader may see, cached per
    state of the store and of the themes."""
    built = kb.store.conn.execute("SELECT value FROM meta WHERE key = 'themes_built'").fetchone()
    key = (str(kb.settings.data_dir), kb.store.revision(), built[0] if built else None, tuple(sorted(visibility)))
    with _TERMS_LOCK:
        if key not in _TERMS:
            _TERMS[key] = _terms_for(kb, visibility)
            while len(_TERMS) > 32:
                _TERMS.popitem(last=False)
        _TERMS.move_to_end(key)
        return _TERMS[key]


def _terms_for(kb: KnowledgeBase, visibility) -> dict[int, list[str]]:
    where, params = filter_sql(Filters(visibility=visibility))
    groups: dict[int, list[str]] = {}
    for theme_id, heading, text in kb.store.conn.execute(
            "SELECT ct.theme_id, c.heading, c.text FROM chunk_themes ct JOIN chunks c ON c.id = ct.chunk_id "
            f"JOIN documents d ON d.id = c.doc_id WHERE {where}", params):
        groups.setdefault(theme_id, []).append(f"{heading} {text}")
    return ctfidf_terms(groups)


def visible_themes(kb: KnowledgeBase, visibility: tuple[str, ...]) -> list[ThemeView]:
    """Themes with at least one passage the reader may see, labelled from those passages only."""
    where, params = filter_sql(Filters(visibility=visibility))
    rows = kb.store.conn.execute(
        "SELECT t.id, count(*) AS passages, count(DISTINCT d.id) AS documents FROM themes t "
        "JOIN chunk_themes ct ON ct.theme_id = t.id JOIN chunks c ON c.id = ct.chunk_id "
        f"JOIN documents d ON d.id = c.doc_id WHERE {where} GROUP BY t.id ORDER BY passages DESC, t.id",
        params).fetchall()
    sites, terms = _site_counts(kb, visibility), visible_terms(kb, visibility)
    return [ThemeView(r["id"], ", ".join(terms.get(r["id"], [])[:3]), terms.get(r["id"], []), r["passages"],
                      r["documents"], sites.get(r["id"], {})) for r in rows if terms.get(r["id"])]


def _site_counts(kb: KnowledgeBase, visibility) -> dict[int, dict[str, int]]:
    where, params = filter_sql(Filters(visibility=visibility))
    out: dict[int, dict[str, int]] = {}
    for theme, site, n in kb.store.conn.execute(
            "SELECT ct.theme_id, coalesce(d.site, ?), count(*) FROM chunk_themes ct "
            "JOIN chunks c ON c.id = ct.chunk_id JOIN documents d ON d.id = c.doc_id "
            f"WHERE {where} GROUP BY ct.theme_id, d.site", [NO_SITE, *params]):
        out.setdefault(theme, {})[site] = n
    return out


def theme_passages(kb: KnowledgeBase, theme_id: int, visibility, limit: int = 8) -> list:
    """The passages nearest the theme's centre, among those the reader may see."""
    where, params = filter_sql(Filters(visibility=visibility))
    return kb.store.conn.execute(
        "SELECT c.id, c.doc_id, c.ordinal, c.text, c.heading, c.page, d.title, d.site, d.doc_type, d.published "
        "FROM chunk_themes ct JOIN chunks c ON c.id = ct.chunk_id JOIN documents d ON d.id = c.doc_id "
        f"WHERE ct.theme_id = ? AND {where} ORDER BY ct.score DESC LIMIT ?", [theme_id, *params, limit]).fetchall()


def theme_documents(kb: KnowledgeBase, theme_id: int, visibility) -> list:
    where, params = filter_sql(Filters(visibility=visibility))
    return kb.store.conn.execute(
        "SELECT d.id, d.title, d.site, d.doc_type, d.published, count(*) AS passages FROM chunk_themes ct "
        "JOIN chunks c ON c.id = ct.chunk_id JOIN documents d ON d.id = c.doc_id "
        f"WHERE ct.theme_id = ? AND {where} GROUP BY d.id ORDER BY passages DESC, d.title",
        [theme_id, *params]).fetchall()
