"""Themes across the collection: k-means over chunk embeddings (seeded, so reproducible), clusters
that turn out to be one theme merged, each theme labelled by a short phrase from its passages
(kb/labels.py). A curator may name a theme; the name follows the theme through rebuilds while a
theme's centre stays where it was.

A reader sees each theme labelled from the passages they may see (computed when asked, cached
until the store or the themes change), so a theme's label never carries words from documents that
are hidden from them or retired since the themes were built. A curator's name is the exception,
shown to everyone by the curator's choice.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np

from . import labels
from .collection import KnowledgeBase
from .errors import BadRequest, NotFound
from .storage.themes import NamedTheme, NewTheme

SEED = 20200124
NO_SITE = "(no site)"  # the heat map's column for documents without a site
# Cosines between cluster centres (all-MiniLM-L6-v2). On the sample corpus, where every document is
# about one programme, distinct themes' centres sit at 0.70-0.86 and split ones at 0.79-0.82; so
# whether their leading phrases read alike decides between 0.75 and 0.9; above 0.9 they are one theme.
SAME_THEME = 0.9
RELATED = 0.75
KEEP_NAME = 0.9  # a rebuilt theme this close to a named one's centre is that theme, and keeps its name
NAME_LIMIT = 80  # characters in a curator's name for a theme


@dataclass
class Theme:
    id: int
    label: str
    terms: list[str]
    size: int
    name: str | None = None


def theme_count(chunks: int) -> int:
    return max(2, min(30, round(math.sqrt(chunks / 2))))


def build(kb: KnowledgeBase, k: int | None = None) -> list[Theme]:
    """Cluster every active passage and store the themes, carrying curators' names over to the
    themes they belong to; returns them."""
    if k is not None and k < 2:
        raise BadRequest("the number of themes must be at least 2")
    rows = kb.store.themes.active_passages()
    generation = kb.store.generation()
    if len(rows) < 4:
        kb.store.themes.replace([], {}, generation)
        return []
    ids = np.asarray([r.id for r in rows], dtype=np.int64)
    vectors = kb.index.vectors(ids)
    k = min(k or theme_count(len(rows)), len(rows) // 2)
    kmeans = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=SEED, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(vectors)
    assignment = kmeans.index.search(vectors, 1)[1][:, 0].astype(np.int64)
    groups: dict[int, list] = {}
    for row, cluster in zip(rows, assignment):
        groups.setdefault(int(cluster), []).append(row)
    profiles, vocabulary = labels.read(groups)
    assignment, profiles = merge(vectors, assignment, profiles, vocabulary)
    described = labels.describe(profiles, vocabulary)
    clusters = sorted(profiles)  # theme ids 1, 2, ... in the clusters' order
    centroids = np.stack([_centre(vectors[assignment == c]) for c in clusters])
    names = carry_names(kb.store.themes.named(), centroids)
    themes = [Theme(n + 1, described[c].label, described[c].terms, profiles[c].size, names.get(n))
              for n, c in enumerate(clusters)]
    row = np.searchsorted(clusters, assignment)  # each passage's theme, as a row of `centroids`
    scores = np.einsum("ij,ij->i", vectors, centroids[row])  # spherical k-means: nearness is the inner product
    assignments = {int(i): (int(r) + 1, float(s)) for i, r, s in zip(ids, row, scores)}
    kb.store.themes.replace([NewTheme(t.id, t.label, t.terms, t.size, t.name, centroids[t.id - 1]) for t in themes],
                            assignments, generation)
    return themes


def _centre(vectors: np.ndarray) -> np.ndarray:
    total = vectors.sum(axis=0)
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


def merge(vectors: np.ndarray, assignment: np.ndarray, profiles: dict[int, labels.Profile],
          vocabulary: labels.Vocabulary) -> tuple[np.ndarray, dict[int, labels.Profile]]:
    """Fold clusters that are one theme into one, the closest pair first: centres at SAME_THEME,
    or at RELATED when their leading phrases read alike (so two themes never do). Stops at two
    themes. Pure: returns a new assignment and profiles."""
    assignment, profiles = assignment.copy(), dict(profiles)
    while len(profiles) > 2:
        clusters = sorted(profiles)
        centres = np.stack([_centre(vectors[assignment == c]) for c in clusters])
        similar = centres @ centres.T
        terms = {c: d.terms[:3] for c, d in labels.describe(profiles, vocabulary, top=3).items()}
        pairs = sorted(((float(similar[i, j]), a, b) for i, a in enumerate(clusters)
                        for j, b in enumerate(clusters) if i < j), key=lambda p: (-p[0], p[1], p[2]))
        pair = next(((a, b) for cosine, a, b in pairs
                     if cosine >= SAME_THEME or cosine >= RELATED and read_alike(terms[a], terms[b])), None)
        if pair is None:
            break
        keep, fold = pair
        assignment[assignment == fold] = keep
        profiles[keep] = profiles[keep] + profiles.pop(fold)
    return assignment, profiles


def read_alike(a: list[str], b: list[str]) -> bool:
    """Either's leading phrase is among the other's first three, or they share two of them."""
    return bool(a and b) and (a[0] in b or b[0] in a or len(set(a) & set(b)) >= 2)


def carry_names(named: list[NamedTheme], centroids: np.ndarray) -> dict[int, str]:
    """Which new theme (by row of `centroids`) each named theme became: one to one, the closest
    pair first, at cosine KEEP_NAME or more; a name whose theme is gone is dropped. Pure."""
    pairs = sorted(((float(np.dot(t.centroid, centroids[n])), t.id, n, t.name) for t in named
                    if t.centroid is not None and t.centroid.shape == centroids.shape[1:]
                    for n in range(len(centroids))), key=lambda p: (-p[0], p[1], p[2]))
    out: dict[int, str] = {}
    used: set[int] = set()
    for cosine, old, new, name in pairs:
        if cosine < KEEP_NAME:
            break
        if old not in used and new not in out:
            out[new] = name
            used.add(old)
    return out


def rename(kb: KnowledgeBase, theme_id: int, name: str | None) -> str | None:
    """Give a theme a curator's name, shown to every reader instead of its label; an empty name
    goes back to the label. Returns the name as stored."""
    name = " ".join((name or "").split()) or None
    if name and len(name) > NAME_LIMIT:
        raise BadRequest(f"a theme's name is at most {NAME_LIMIT} characters; this one is {len(name)}")
    if not kb.store.themes.rename(theme_id, name):
        raise NotFound(f"no theme {theme_id}")
    return name


def stale(kb: KnowledgeBase) -> bool:
    """True when documents changed since the themes were built (ingest marks them stale this way)."""
    built_from = kb.store.themes.generation()
    return built_from is None or built_from != kb.store.generation()


@dataclass
class ThemeView:
    """A theme as one reader may see it: counts, label and phrases from the documents visible to
    them; `label` is the curator's `name` when there is one, else the `computed` label."""

    id: int
    label: str
    terms: list[str]
    passages: int
    documents: int
    sites: dict[str, int]
    name: str | None = None
    computed: str = ""


_TERMS: OrderedDict[tuple, dict[int, labels.Description]] = OrderedDict()
_TERMS_LOCK = threading.Lock()  # held while labels are computed: others asking meanwhile wait for them


def visible_terms(kb: KnowledgeBase, visibility) -> dict[int, labels.Description]:
    """Each theme's label and distinctive phrases among the active passages the reader may see,
    cached per state of the store and of the themes."""
    key = (str(kb.settings.data_dir), kb.store.revision(), kb.store.themes.built(), tuple(sorted(visibility)))
    with _TERMS_LOCK:
        if key not in _TERMS:
            _TERMS[key] = _terms_for(kb, visibility)
            while len(_TERMS) > 32:
                _TERMS.popitem(last=False)
        _TERMS.move_to_end(key)
        return _TERMS[key]


def _terms_for(kb: KnowledgeBase, visibility) -> dict[int, labels.Description]:
    groups: dict[int, list] = {}
    for passage in kb.store.themes.texts(visibility):
        groups.setdefault(passage.theme_id, []).append(passage)
    return labels.label(groups)


def visible_themes(kb: KnowledgeBase, visibility: tuple[str, ...]) -> list[ThemeView]:
    """Themes with at least one passage the reader may see, labelled from those passages only
    (or by their curator's name)."""
    rows = kb.store.themes.counts(visibility)
    sites, described = _site_counts(kb, visibility), visible_terms(kb, visibility)
    out = []
    for r in rows:
        d = described.get(r.id)
        if d and (d.label or r.name):
            out.append(ThemeView(r.id, r.name or d.label, d.terms, r.passages, r.documents, sites.get(r.id, {}),
                                 r.name, d.label))
    return out


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
