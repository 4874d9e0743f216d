"""Themes across the collection: k-means over chunk embeddings (seeded, so reproducible), each
theme labelled by its distinctive terms (class-based TF-IDF). The labelling is a pure function.

A reader sees each theme labelled from the passages they may see (computed when asked, cached
until the store or the themes change), so a theme's name never carries words from documents that
are hidden from them or retired since the themes were built.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np

from .collection import KnowledgeBase
from .errors import BadRequest
from .query import STOPWORDS

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
    rows = kb.store.themes.active_passages()
    generation = kb.store.generation()
    if len(rows) < 4:
        _store(kb, [], {}, generation)
        return []
    ids = np.asarray([r.id for r in rows], dtype=np.int64)
    vectors = kb.index.vectors(ids)
    k = min(k or theme_count(len(rows)), len(rows) // 2)
    kmeans = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=SEED, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(vectors)
    scores, labels = kmeans.index.search(vectors, 1)  # spherical k-means: inner products
    groups: dict[int, list[str]] = {}
    for row, label in zip(rows, labels[:, 0]):
        groups.setdefault(int(label), []).append(f"{row.heading} {row.text}")
    terms = ctfidf_terms(groups)
    themes = [Theme(g + 1, ", ".join(terms[g][:3]), terms[g], len(groups[g])) for g in sorted(groups)]
    assignments = {int(i): (int(l) + 1, float(s)) for i, l, s in zip(ids, labels[:, 0], scores[:, 0])}
    _store(kb, themes, assignments, generation)
    return themes


def _store(kb, themes, assignments, generation) -> None:
    """Replace the stored themes; the label columns hold the all-passages view (`kb themes`)."""
    kb.store.themes.replace([(t.id, t.label, t.terms, t.size) for t in themes], assignments, generation)


def stale(kb: KnowledgeBase) -> bool:
    """True when documents changed since the themes were built (ingest marks them stale this way)."""
    built_from = kb.store.themes.generation()
    return built_from is None or built_from != kb.store.generation()


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
    key = (str(kb.settings.data_dir), kb.store.revision(), kb.store.themes.built(), tuple(sorted(visibility)))
    with _TERMS_LOCK:
        if key not in _TERMS:
            _TERMS[key] = _terms_for(kb, visibility)
            while len(_TERMS) > 32:
                _TERMS.popitem(last=False)
        _TERMS.move_to_end(key)
        return _TERMS[key]


def _terms_for(kb: KnowledgeBase, visibility) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for theme_id, heading, text in kb.store.themes.texts(visibility):
        groups.setdefault(theme_id, []).append(f"{heading} {text}")
    return ctfidf_terms(groups)


def visible_themes(kb: KnowledgeBase, visibility: tuple[str, ...]) -> list[ThemeView]:
    """Themes with at least one passage the reader may see, labelled from those passages only."""
    rows = kb.store.themes.counts(visibility)
    sites, terms = _site_counts(kb, visibility), visible_terms(kb, visibility)
    return [ThemeView(r.id, ", ".join(terms.get(r.id, [])[:3]), terms.get(r.id, []), r.passages,
                      r.documents, sites.get(r.id, {})) for r in rows if terms.get(r.id)]


def _site_counts(kb: KnowledgeBase, visibility) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for theme, site, n in kb.store.themes.site_counts(visibility, NO_SITE):
        out.setdefault(theme, {})[site] = n
    return out


def theme_passages(kb: KnowledgeBase, theme_id: int, visibility, limit: int = 8) -> list:
    """The passages nearest the theme's centre, among those the reader may see."""
    return kb.store.themes.passages(theme_id, visibility, limit)


def theme_documents(kb: KnowledgeBase, theme_id: int, visibility) -> list:
    return kb.store.themes.documents(theme_id, visibility)
