"""Hybrid search: dense (FAISS) and keyword (FTS5 BM25) candidates, fused, folded, paged.

Filters, visibility included, are applied inside both retrievers: FAISS gets an id selector
built from SQL, FTS5 gets the same SQL conditions.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import dedup, fusion
from .collection import KnowledgeBase
from .errors import BadRequest, EmptyQuery
from .models import Filters, Hit, SearchResult
from .query import normalize, terms
from .snippet import make_snippet

MODES = ("hybrid", "dense", "keyword")
GROUPS = ("passage", "document")  # a result per passage, or per document with its best passages
MAX_K = 100
FOLD_OVERLAP = 0.6
RELEVANCE_FLOOR = 0.30  # cosine similarity below which a passage does not really speak to the question
FEEDBACK_POOL = 1000  # dense candidates kept for the feedback round to re-rank
PER_DOCUMENT = 2  # passages of one document shown before other documents get their turn
MORE_PASSAGES = 2  # grouped by document: further passages shown under a document's best one
NEAREST = 5  # nothing matches: the nearest passages shown, under their own heading, uncounted


def validate(query: str, k: int, mode: str, offset: int = 0, group: str = "passage") -> str:
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if group not in GROUPS:
        raise BadRequest(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}")
    if offset < 0 or offset > 10_000:
        raise BadRequest("offset must be between 0 and 10000")
    text = normalize(query)
    if not text:
        raise EmptyQuery("the query is empty")
    return text


class Searcher:
    """Runs searches against a knowledge base, caching the allowed-id sets per filter."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._admitted: OrderedDict[str, np.ndarray] = OrderedDict()  # filters -> sorted chunk ids
        self._covers: dict[tuple, bool] = {}  # (revision, index, its version, filters) -> holds exactly those?
        self._revision: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._reranker = None
        self._pool: ThreadPoolExecutor | None = None  # PostgreSQL: keyword searches run beside dense ones

    def admitted(self, filters: Filters) -> np.ndarray:
        """The sorted ids of every chunk the filters admit, cached until the store's next change."""
        revision = self.kb.store.revision()
        key = json.dumps(filters.__dict__, sort_keys=True, default=list)
        with self._lock:
            if revision != self._revision:
                self._admitted.clear()
                self._covers.clear()
                self._revision = revision
            if key in self._admitted:
                self._admitted.move_to_end(key)
                return self._admitted[key]
        ids = np.sort(self.kb.store.allowed_chunk_ids(filters))
        with self._lock:
            if revision == self._revision:
                self._admitted[key] = ids
                while len(self._admitted) > 16:
                    self._admitted.popitem(last=False)
        return ids

    def allowed_ids(self, filters: Filters) -> np.ndarray | None:
        """Chunk ids the filters admit, or None when the index holds exactly those (no selector
        needed). Equal counts are not enough: another process may have committed documents the
        index does not hold yet, so the sets are compared, once per state of store and index."""
        revision = self.kb.store.revision()
        ids = self.admitted(filters)
        index = self.kb.index
        if filters.doc_ids is not None or len(ids) != index.count():
            return ids
        stamp = (revision, id(index), index.version, json.dumps(filters.__dict__, sort_keys=True, default=list))
        with self._lock:
            known = self._covers.get(stamp)
        if known is None:
            known = bool(np.array_equal(ids, np.sort(index.ids())))
            with self._lock:
                if revision == self._revision:
                    self._covers[stamp] = known
                    while len(self._covers) > 16:
                        self._covers.pop(next(iter(self._covers)))
        return None if known else ids

    def candidates(self, text: str, filters: Filters, mode: str, depth: int) -> list[tuple[int, float]]:
        """Ranked (chunk id, score) pairs for one query, filters applied inside each retriever."""
        return self._retrieve(text, filters, mode, depth).ranked

    def _retrieve(self, text: str, filters: Filters, mode: str, depth: int) -> "Retrieved":
        settings, index = self.kb.settings, self.kb.index
        dense, keyword, pool, vector = [], [], [], None
        feedback = mode == "hybrid" and settings.feedback_docs > 0
        aside = None
        if mode == "hybrid" and self.kb.store.keeps_vectors:
            # the database works on the keyword side in a process of its own while this thread
            # encodes the query and waits on the dense side: the two overlap instead of adding up
            # (in this context: a web request's reads go to the same server on both sides)
            aside = self._helpers().submit(contextvars.copy_context().run, self._keyword, text, filters, depth)
        if mode in ("hybrid", "dense"):
            vector = self.kb.embedder.encode_query(text)
            # with feedback, one search keeps a deeper pool that the moved query re-scores
            pool = self._dense(index, vector, max(depth, FEEDBACK_POOL) if feedback else depth, filters)
            dense = pool[:depth]
        if aside is not None:
            keyword = aside.result()
        elif mode in ("hybrid", "keyword"):
            keyword = self._keyword(text, filters, depth)
        matched = {i for i, _ in keyword} | {i for i, score in dense if score >= RELEVANCE_FLOOR}
        # a full list whose last entry still matches may have left matches out: counts are "at least"
        complete = len(keyword) < depth and not (len(dense) == depth and dense[-1][1] >= RELEVANCE_FLOOR)
        if mode == "dense":
            return Retrieved(dense, matched, complete, vector)
        if mode == "keyword":
            return Retrieved(keyword, matched, complete, vector)
        fused = self._fuse(dense, keyword)
        if feedback and fused and pool:
            # pseudo-relevance feedback: move the query towards the best fused passages and rank the
            # dense pool again by the moved query; on msmarco the pool held 98% of what a second full
            # search ranks in its top 100 (all of it on hct), with the same nDCG@10, for no second scan
            top = np.asarray([i for i, _ in fused[:settings.feedback_docs]], dtype=np.int64)
            moved = vector + settings.feedback_weight * index.vectors(top).mean(axis=0)
            moved /= max(float(np.linalg.norm(moved)), 1e-9)
            ids = np.asarray([i for i, _ in pool], dtype=np.int64)
            scores = index.scores(ids, moved)
            order = np.argsort(-scores, kind="stable")[:depth]
            fused = self._fuse([(int(ids[n]), float(scores[n])) for n in order], keyword)
        if settings.reranker:
            fused = self._rerank(text, fused)
        if pool:  # the moved query's pool may hold close passages the first dense list left out
            near = {i for i, score in pool if score >= RELEVANCE_FLOOR}
            matched |= {i for i, _ in fused if i in near}
        return Retrieved(fused, matched, complete, vector)

    def _dense(self, index, vector: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        """FAISS gets the ids the filters admit (cached); the database applies the filters itself."""
        if self.kb.store.keeps_vectors:
            return index.search(vector, k, filters=filters)
        return index.search(vector, k, self.allowed_ids(filters))

    def _helpers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                # more than the searches a server runs at once (kb serve --threads)
                self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kb-keyword")
            return self._pool

    def _keyword(self, text: str, filters: Filters, depth: int) -> list[tuple[int, float]]:
        """BM25 with the filters inside; an approximate vector index goes with an approximate
        keyword search (PostgreSQL only: FTS5 is always exact)."""
        admitted = None if self.kb.store.keeps_vectors else self.admitted(filters)
        return self.kb.store.keyword_search(terms(text), filters, depth, admitted, self.kb.index.kind == "hnsw")

    def _fuse(self, dense, keyword):
        settings = self.kb.settings
        if settings.fusion == "rrf":
            return fusion.rrf([dense, keyword], [settings.dense_weight, 1 - settings.dense_weight])
        return fusion.convex(dense, keyword, settings.dense_weight)

    def _rerank(self, text: str, fused: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Reorder the top candidates with a cross-encoder, when one is configured."""
        depth = self.kb.settings.rerank_depth
        head, tail = fused[:depth], fused[depth:]
        rows = self.kb.store.chunk_rows([i for i, _ in head])
        pairs = [(i, rows[i].text) for i, _ in head if i in rows]
        if not pairs:
            return fused
        scores = self.reranker.predict([(text, body) for _, body in pairs])
        reranked = sorted(zip((i for i, _ in pairs), (float(s) for s in scores)), key=lambda kv: -kv[1])
        floor = min(s for _, s in reranked)
        return reranked + [(i, floor - 1 - n) for n, (i, _) in enumerate(tail)]

    @property
    def reranker(self):
        if self._reranker is None:
            from .embed import load_cross_encoder

            self._reranker = load_cross_encoder(self.kb.settings.reranker)
        return self._reranker

    def search(self, query: str, k: int = 10, filters: Filters | None = None, mode: str = "hybrid",
               offset: int = 0, group: str = "passage") -> SearchResult:
        """One page of results. Only passages that match count and are listed: a keyword match, or
        a similarity in meaning at or above RELEVANCE_FLOOR. When none does, the nearest few are
        given apart (`nearest`), uncounted. `group="document"` gives each document once, at the
        rank of its best passage, with up to MORE_PASSAGES more of its passages beneath."""
        started = time.perf_counter()
        text = validate(query, k, mode, offset, group)
        filters = filters or Filters()
        depth = max(self.kb.settings.candidates, k)  # a fixed pool: totals and pages stay stable
        found = self._retrieve(text, filters, mode, depth)
        rows = self.kb.store.chunk_rows([i for i, _ in found.ranked])
        # a backstop: whatever a retriever returned, nothing retired or hidden from this reader is shown
        rows = {i: row for i, row in rows.items()
                if row.status == "active" and row.visibility in filters.visibility}
        folded = fold([(rows[i], score) for i, score in found.ranked if i in rows])
        matching = [hit for hit in folded if hit[0].id in found.matched]
        nearest = [] if matching else [_hit(row, score, also, text) for row, score, also in folded[:NEAREST]]
        if group == "document":
            entries = by_document(matching)
        else:
            entries = [(row, score, also, []) for row, score, also in spread(matching, PER_DOCUMENT)]
        result = [_hit(row, score, also, text, more) for row, score, also, more in entries[offset:offset + k]]
        best = None
        if folded and found.vector is not None:  # how close the best passage is in meaning, to flag weak matches
            top = np.asarray([folded[0][0].id], dtype=np.int64)
            best = round(float(self.kb.index.scores(top, found.vector)[0]), 4)
        return SearchResult(query=text, mode=mode, took_ms=(time.perf_counter() - started) * 1000,
                            hits=result, total=len(entries), facets=facets([row for row, *_ in matching]),
                            best_similarity=best, group=group, passages=len(matching),
                            documents=len({row.doc_id for row, *_ in matching}), complete=found.complete,
                            nearest=nearest)

    def similar(self, doc_id: int, k: int = 5, visibility=None) -> list[tuple[int, float]]:
        """Nearest other documents by meaning (mean chunk vector), near-duplicates excluded."""
        store, index = self.kb.store, self.kb.index
        doc = store.get(doc_id, visibility)
        ids = store.chunk_ids(doc_id=doc.id)
        if not len(ids):
            return []
        centre = index.vectors(ids).mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-9)
        excluded = {doc.id, *store.duplicates_of(doc.id)}
        filters = Filters(visibility=tuple(visibility) if visibility else Filters().visibility)
        found = self._dense(index, centre, 200, filters)
        rows = store.chunk_rows([i for i, _ in found])
        best: dict[int, float] = {}
        for chunk_id, score in found:
            row = rows.get(chunk_id)
            if row is None or row.doc_id in excluded:
                continue
            best[row.doc_id] = max(best.get(row.doc_id, -1.0), score)
        return sorted(best.items(), key=lambda kv: -kv[1])[:k]


def fold(ranked: list) -> list[tuple]:
    """Fold hits that repeat a better-ranked passage from another document (the same text
    published elsewhere) into that hit, which then lists where else it appears.

    A hit folds into the kept hit of another document with which its word 3-shingles overlap
    most, if that Jaccard overlap reaches FOLD_OVERLAP; the overlaps of all pairs come from one
    sparse product over cached shingle hashes.
    """
    rows = [row for row, _ in ranked]
    common = dedup.shared_counts(dedup.TRIPLES.get_many([row.text for row in rows]))
    sizes = np.diagonal(common)
    docs = np.asarray([row.doc_id for row in rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = common / (sizes[:, None] + sizes[None, :] - common)
    # which better-ranked hits of another document each hit overlaps enough (most have none)
    close = np.tril((overlap >= FOLD_OVERLAP) & (docs[:, None] != docs[None, :]), k=-1)
    maybe = close.any(axis=1)
    kept_mask = np.zeros(len(rows), dtype=bool)
    into: dict[int, int] = {}  # row index -> index in `kept`
    kept: list[tuple] = []
    for j, (row, score) in enumerate(ranked):
        near = np.flatnonzero(kept_mask[:j] & close[j, :j]) if maybe[j] else ()
        if len(near):
            best = near[np.argmax(common[j, near])]  # most shared; the better-ranked on a tie
            also = kept[into[int(best)]][2]
            if all(a["doc_id"] != row.doc_id for a in also):
                also.append({"doc_id": row.doc_id, "title": row.title, "site": row.site,
                             "source": row.source})
            continue
        kept_mask[j] = True
        into[j] = len(kept)
        kept.append((row, score, []))
    return kept


def by_document(hits: list[tuple]) -> list[tuple]:
    """Each document once, at the rank of its best hit: (row, score, also_in, more passages)."""
    entries: dict[int, tuple] = {}
    for row, score, also in hits:
        if row.doc_id not in entries:
            entries[row.doc_id] = (row, score, also, [])
        elif len(entries[row.doc_id][3]) < MORE_PASSAGES:
            entries[row.doc_id][3].append(row)
    return list(entries.values())


def spread(hits: list[tuple], per_doc: int) -> list[tuple]:
    """Keep the order, but move a document's passages beyond its first `per_doc` after the rest."""
    seen: Counter = Counter()
    first, later = [], []
    for hit in hits:
        seen[hit[0].doc_id] += 1
        (first if seen[hit[0].doc_id] <= per_doc else later).append(hit)
    return first + later


def facets(rows: list) -> dict[str, dict[str, int]]:
    """Counts of distinct documents per site, type, year and tag among the results."""
    seen, out = set(), {"site": Counter(), "doc_type": Counter(), "year": Counter(), "tag": Counter()}
    for row in rows:
        if row.doc_id in seen:
            continue
        seen.add(row.doc_id)
        if row.site:
            out["site"][row.site] += 1
        if row.doc_type:
            out["doc_type"][row.doc_type] += 1
        if row.published:
            out["year"][row.published[:4]] += 1
        for tag in row.tags:
            out["tag"][tag] += 1
    return {name: dict(counter.most_common()) for name, counter in out.items()}


def _hit(row, score: float, also: list, text: str, more: list | None = None) -> Hit:
    return Hit(doc_id=row.doc_id, chunk_id=row.id, ordinal=row.ordinal, title=row.title,
               source=row.source, site=row.site, doc_type=row.doc_type, published=row.published,
               page=row.page, heading=row.heading, text=row.text, snippet=make_snippet(row.text, text, emphasise=True),
               score=round(float(score), 6), also_in=also, visibility=row.visibility,
               more=[{"chunk_id": r.id, "ordinal": r.ordinal, "page": r.page, "heading": r.heading,
                      "snippet": make_snippet(r.text, text, width=25)} for r in more or []])


class Retrieved(NamedTuple):
    """What the retrievers found for one query: the ranked (chunk id, score) pairs, the ids that
    match (a keyword match, or close enough in meaning), whether every match is among them, and
    the query's vector (None in keyword mode)."""

    ranked: list[tuple[int, float]]
    matched: set[int]
    complete: bool
    vector: np.ndarray | None
