"""Themes across the collection: k-means over chunk embeddings (seeded, so reproducible), each
theme labelled by its distinctive terms (class-based TF-IDF). The labelling is a pure function.

Labels are computed twice: from all active passages (for signed-in readers) and from public
passages only, so that a theme's name never carries words from documents a visitor may not see.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass

import faiss
import numpy as np

from .collection import KnowledgeBase
from .models import Filters
from .query import STOPWORDS
from .store import filter_sql

SEED = 20200124
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
    public: dict[int, list[str]] = {}
    for row, label in zip(rows, labels[:, 0]):
        text = f"{row['heading']} {row['text']}"
        groups.setdefault(int(label), []).append(text)
        if row["visibility"] == "public":
            public.setdefault(int(label), []).append(text)
    terms, public_terms = ctfidf_terms(groups), ctfidf_terms(public)
    themes = [Theme(g + 1, ", ".join(terms[g][:3]), terms[g], len(groups[g])) for g in sorted(groups)]
    assignments = {int(i): (int(l) + 1, float(s)) for i, l, s in zip(ids, labels[:, 0], scores[:, 0])}
    _store(kb, themes, assignments, generation, {g + 1: public_terms.get(g, []) for g in groups})
    return themes


def _store(kb, themes, assignments, generation, public_terms=None) -> None:
    public_terms = public_terms or {}
    with kb.store.transaction(bump=None) as conn:
        conn.execute("DELETE FROM chunk_themes")
        conn.execute("DELETE FROM themes")
        for t in themes:
            pub = public_terms.get(t.id, [])
            conn.execute("INSERT INTO themes (id, label, terms, public_label, public_terms, size) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (t.id, t.label, json.dumps(t.terms), ", ".join(pub[:3]), json.dumps(pub), t.size))
        conn.executemany("INSERT INTO chunk_themes (chunk_id, theme_id, score) VALUES (?, ?, ?)",
                         [(c, t, d) for c, (t, d) in assignments.items()])
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('themes_generation', ?)", (str(generation),))


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


def visible_themes(kb: KnowledgeBase, visibility: tuple[str, ...]) -> list[ThemeView]:
    public_only = set(visibility) == {"public"}
    where, params = filter_sql(Filters(visibility=visibility))
    rows = kb.store.conn.execute(
        "SELECT t.id, t.label, t.terms, t.public_label, t.public_terms, count(*) AS passages, "
        "count(DISTINCT d.id) AS documents FROM themes t JOIN chunk_themes ct ON ct.theme_id = t.id "
        "JOIN chunks c ON c.id = ct.chunk_id JOIN documents d ON d.id = c.doc_id "
        f"WHERE {where} GROUP BY t.id ORDER BY passages DESC, t.id", params).fetchall()
    sites = _site_counts(kb, visibility)
    return [ThemeView(r["id"], r["public_label"] if public_only else r["label"],
                      json.loads(r["public_terms"] if public_only else r["terms"]), r["passages"], r["documents"],
                      sites.get(r["id"], {})) for r in rows if (r["public_label"] or not public_only)]


def _site_counts(kb: KnowledgeBase, visibility) -> dict[int, dict[str, int]]:
    where, params = filter_sql(Filters(visibility=visibility))
    out: dict[int, dict[str, int]] = {}
    for theme, site, n in kb.store.conn.execute(
            "SELECT ct.theme_id, coalesce(d.site, '(no site)'), count(*) FROM chunk_themes ct "
            "JOIN chunks c ON c.id = ct.chunk_id JOIN documents d ON d.id = c.doc_id "
            f"WHERE {where} GROUP BY ct.theme_id, d.site", params):
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
