"""The keyword index, the one part each database keeps its own way.

SQLite: FTS5's virtual table `chunks_fts` (porter stemming), ranked by FTS5's bm25(). PostgreSQL: a
weighted tsvector per chunk in `chunk_search` (GIN index, `english` configuration), ranked by BM25
computed in SQL (`kb_score`, Alembic revision 0003) with FTS5's k1, b and column weights, from term
statistics kept here as chunks come and go: ts_rank_cd lost 0.045-0.075 nDCG@10 against it
(docs/scale-out.md). Impact-ordered postings (`term_postings`) let a search stop early (see
search_postgres). Filters, visibility included, are applied inside both.

BM25's statistics (how many chunks hold a word, their average length) count only what the reader
may see, or a visitor's scores would move when a hidden document holding a word arrives and tell
them it exists. Each chunk has a keyword level, the least reader that may see it: 0 an active
public document's, 1 an active partners-only one's, 2 any other (curators-only or retired).
SQLite keeps an FTS5 index per reader (`chunks_fts_public` holds level 0, `chunks_fts_partners`
levels 0-1, both contentless; `chunks_fts` every chunk, with its text) and the levels in
`keyword_levels`; PostgreSQL keeps each level's document frequencies and totals apart and adds up
those at or below the reader's. A document whose visibility or status changes moves (`relevel`).
"""

from __future__ import annotations

import json
import math
from typing import Iterable

import numpy as np
from sqlalchemy import Connection, Float, Integer, Text, cast, column, func, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import ARRAY

from ..models import Filters
from .database import Database
from .filters import conditions
from .schema import chunk_search, chunks, documents, meta, term_stats

KEYWORD_HEAD = 4  # keyword search ranks limit × this many matches before filtering them
READER_INDEXES = ("chunks_fts_public", "chunks_fts_partners", "chunks_fts")  # SQLite: each reader level's
LEVEL = ("CASE WHEN d.status <> 'active' THEN 2 WHEN d.visibility = 'public' THEN 0 "
         "WHEN d.visibility = 'partners' THEN 1 ELSE 2 END")  # a chunk's keyword level, from its document `d`


def reader_level(visibility: Iterable[str]) -> int:
    """The keyword level of a reader who may see these visibilities: their statistics count the
    chunks at or below it."""
    seen = set(visibility)
    return 0 if seen <= {"public"} else 1 if seen <= {"public", "partners"} else 2


def _bm25(fts: str) -> str:
    return f"bm25({fts}, 1.0, 0.6, 0.8)"  # column weights: text, title, headings


def search_sqlite(db: Database, words: list[str], filters: Filters, limit: int,
                  admitted: np.ndarray | None = None) -> list[tuple[int, float]]:
    """FTS5's BM25. FTS5 ranks its own top few hundred first and only those are checked against the
    filters (against `admitted`, the sorted chunk ids the filters admit, when the caller has them):
    ranking every match joined to its document cost three times as much. When too few of them
    pass (a narrow filter), the full filtered query runs; either way the result is the same."""
    match = " OR ".join(f'"{w}"' for w in words)  # quoted tokens: FTS5 syntax in a query is plain words
    wanted = KEYWORD_HEAD * limit
    fts = READER_INDEXES[reader_level(filters.visibility)]
    with db.sqlite_read() as raw:  # FTS5's own SQL, on sqlite3 itself (see Database.sqlite_read)
        head = raw.execute(f"SELECT rowid, {_bm25(fts)} AS rank FROM {fts} WHERE {fts} MATCH ? "
                           "ORDER BY rank LIMIT ?", (match, wanted)).fetchall()
    ids = np.fromiter((r[0] for r in head), dtype=np.int64, count=len(head))
    if admitted is not None:
        at = np.searchsorted(admitted, ids).clip(max=max(len(admitted) - 1, 0))
        passed = set(ids[admitted[at] == ids].tolist()) if len(admitted) else set()
    elif len(ids):
        with db.read() as conn:
            passed = set(conn.execute(
                select(chunks.c.id).join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
                .where(chunks.c.id.in_(ids.tolist()), conditions(filters, dialect="sqlite"))).scalars())
    else:
        passed = set()
    kept = [(int(i), -float(rank)) for i, rank in head if i in passed][:limit]
    if len(kept) == limit or len(head) < wanted:
        return kept
    index = table(fts, column("rowid"))
    query = (select(index.c.rowid, literal_column(_bm25(fts)).label("rank"))
             .select_from(index.join(chunks, chunks.c.id == index.c.rowid)
                          .join(documents, documents.c.id == chunks.c.doc_id))
             .where(text(f"{fts} MATCH :m"), conditions(filters, dialect="sqlite"))
             .order_by(text("rank")).limit(limit))
    with db.read() as conn:
        rows = conn.execute(query, {"m": match}).all()
    return [(int(r[0]), -float(r[1])) for r in rows]


def search_postgres(db: Database, words: list[str], filters: Filters, limit: int,
                    approximate: bool = False) -> list[tuple[int, float]]:
    """PostgreSQL: BM25 as FTS5 ranks (`kb_score`, from the term statistics kept beside the index),
    filters inside the query. Rather than score every chunk holding a query word, it reads each
    word's best postings by impact (`term_postings`), bounds every chunk found there from what
    was read, and scores exactly the most promising few, a round at a time, until no other chunk
    can reach the results (the threshold algorithms of Fagin et al.: an unseen chunk scores at most
    the sum of each word's last impact read, times its IDF). On small collections every posting is
    read and the answer is always exact. When the bounds leave doubt, every match is scored,
    unless `approximate` (a collection large enough for an approximate vector index too), which
    keeps what its rounds found if they found enough that pass the filters. Statistics, postings
    and scores come from one snapshot, so a write committed meanwhile cannot void the bounds."""
    if limit <= 0:
        return []
    level = reader_level(filters.visibility)
    with db.read(snapshot=True) as conn:
        stats = dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(STATS))).all())
        chunks_n, length = _totals(stats, level)
        df = func.sum(term_stats.c.df)
        found = conn.execute(select(term_stats.c.term, df).where(
            term_stats.c.level <= level,
            term_stats.c.term == func.any(func.tsvector_to_array(func.to_tsvector("english", " ".join(words)))))
            .group_by(term_stats.c.term).having(df > 0)).all()
        if not found or not chunks_n:
            return []
        lexemes = [t for t, _ in found]
        idf = np.asarray([max(math.log((chunks_n - df + 0.5) / (df + 0.5)), 1e-6) for _, df in found])
        avgdl = max(length / chunks_n, 1.0)
        score = func.kb_score(chunk_search.c.lexemes, chunk_search.c.tfs, chunk_search.c.length,
                              cast(lexemes, ARRAY(Text)), cast(idf.tolist(), ARRAY(Float)), avgdl).label("score")
        ranked = (select(chunk_search.c.chunk_id, score)
                  .join_from(chunk_search, chunks, chunks.c.id == chunk_search.c.chunk_id)
                  .join(documents, documents.c.id == chunks.c.doc_id)
                  .where(conditions(filters, dialect="postgresql"))
                  .order_by(score.desc(), chunk_search.c.chunk_id).limit(limit))
        depth = POSTINGS_DEPTH * limit
        read = np.asarray([tuple(row) for row in conn.execute(TOP_POSTINGS, {"terms": lexemes, "depth": depth})],
                          dtype=np.float64)  # plain tuples: numpy probing SQLAlchemy's rows cost 20 ms a search
        candidates, bounds = _bounds(read.reshape(-1, 3), idf, depth)
        # impacts were stored against the reference length; a longer average can only raise them
        slack = max(1.0, avgdl / float(stats.get("keyword_ref_avgdl") or avgdl)) * (1 + 1e-5)
        unseen = slack * bounds[-1]  # what a chunk in no list read can score at most
        best: list[tuple[int, float]] = []
        for start in range(0, min(len(candidates), ROUNDS * ROUND * limit), ROUND * limit):
            batch = [int(i) for i in candidates[start:start + ROUND * limit]]
            best = sorted(best + [(int(i), float(r)) for i, r in conn.execute(
                ranked.where(chunk_search.c.chunk_id == func.any(cast(batch, ARRAY(Integer)))))],
                key=lambda hit: (-hit[1], hit[0]))[:limit]
            rest = max(unseen, slack * bounds[start + len(batch)] if start + len(batch) < len(candidates) else 0.0)
            if len(best) == limit and best[-1][1] > rest:
                return best  # nothing else can place: the exact answer
            if approximate and len(best) == limit and start // (ROUND * limit) + 1 >= APPROXIMATE_ROUNDS:
                return best
        if (approximate and len(best) == limit) or (unseen == 0 and len(candidates) <= ROUNDS * ROUND * limit):
            return best  # approximate, or every match was scored
        # a narrow filter that kept rejecting what the postings offered, or bounds that left doubt
        query = func.to_tsquery("english", " | ".join(words))  # words are letters and digits only (kb.query.terms)
        return [(int(i), float(r)) for i, r in conn.execute(ranked.where(chunk_search.c.terms.op("@@")(query)))]


def _bounds(read: np.ndarray, idf: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """From the postings read, (word number from 1, chunk id, impact) rows: the chunks found,
    most promising first, and for each the most it or any chunk after it can score (at the
    reference length), followed by the most a chunk found in no list can score."""
    words = read[:, 0].astype(np.int64) - 1
    counts = np.bincount(words, minlength=len(idf))
    last = np.zeros(len(idf))
    ends = np.cumsum(counts) - 1
    full = counts == depth  # a list read to its end holds nothing more
    last[full] = read[ends[full], 2]
    ids, where = np.unique(read[:, 1].astype(np.int64), return_inverse=True)
    seen = np.bincount(where, weights=idf[words] * read[:, 2], minlength=len(ids))
    counted = np.bincount(where, weights=(idf * last)[words], minlength=len(ids))
    upper = seen + float(idf @ last) - counted  # a word's list missing the chunk: at most its last impact
    order = np.lexsort((ids, -upper, -seen))  # by what was read of them: a better guess than the bound
    upper = np.maximum.accumulate(upper[order][::-1])[::-1]  # the most any chunk from here on can score
    return ids[order], np.append(upper, float(idf @ last))


LEVELS = range(3)
STATS = (*(f"keyword_{what}_{n}" for what in ("chunks", "length") for n in LEVELS), "keyword_ref_avgdl")


def _totals(stats: dict, level: int) -> tuple[int, int]:
    """PostgreSQL: the chunks and tokens a reader at `level` is counted over."""
    return (sum(int(stats.get(f"keyword_chunks_{n}", 0)) for n in LEVELS if n <= level),
            sum(int(stats.get(f"keyword_length_{n}", 0)) for n in LEVELS if n <= level))
POSTINGS_DEPTH = 4  # postings read per query word, times the results wanted
ROUND = 4  # chunks scored exactly per round, times the results wanted
ROUNDS = 3  # rounds before an exact search scores every match instead
APPROXIMATE_ROUNDS = 2  # rounds an approximate search scores at most (recall: docs/benchmarks.md)
TOP_POSTINGS = text(
    "SELECT q.n, p.chunk_id, p.impact FROM unnest(CAST(:terms AS text[])) WITH ORDINALITY AS q(term, n), "
    "LATERAL (SELECT chunk_id, impact FROM term_postings WHERE term = q.term "
    "ORDER BY impact DESC, chunk_id DESC LIMIT :depth) AS p ORDER BY q.n, p.impact DESC")


PG_LENGTH = "coalesce((SELECT max(p) FROM unnest({v}) AS u, unnest(u.positions) AS p), 0)"  # tokens, as FTS5 counts
PG_ARRAYS = ("SELECT coalesce(array_agg(u.lexeme ORDER BY u.lexeme), '{{}}'), "  # what kb_score reads
             "coalesce(array_agg(kb_tf(u.weights) ORDER BY u.lexeme), '{{}}') FROM unnest({v}) AS u")
PG_TERMS = ("setweight(to_tsvector('english', {text}), 'A') || setweight(to_tsvector('english', {heading}), 'B') "
            "|| setweight(to_tsvector('english', {title}), 'C')")


def add(conn: Connection, rows: Iterable[tuple[int, str, str, str]]) -> None:
    """Index new chunks, given as (chunk id, text, document title, heading path), at the keyword
    level their (already stored) document gives them."""
    rows = [{"id": i, "text": t, "title": title, "heading": h} for i, t, title, h in rows]
    if not rows:
        return
    ids = [r["id"] for r in rows]
    if conn.dialect.name == "postgresql":  # the rows as four arrays in one statement
        terms = PG_TERMS.format(text="r.text", heading="r.heading", title="r.title")
        conn.execute(text(f"INSERT INTO chunk_search (chunk_id, terms, length, lexemes, tfs, level) "
                          f"SELECT r.id, t, {PG_LENGTH.format(v='t')}, a.lexemes, a.tfs, "
                          f"(SELECT {LEVEL} FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = r.id) "
                          "FROM unnest(CAST(:id AS integer[]), CAST(:text AS text[]), CAST(:title AS text[]), "
                          "CAST(:heading AS text[])) AS r(id, text, title, heading), "
                          f"LATERAL (SELECT {terms}) AS x(t), LATERAL ({PG_ARRAYS.format(v='t')}) AS a(lexemes, tfs)"),
                     {name: [r[name] for r in rows] for name in ("id", "text", "title", "heading")})
        _term_stats(conn, ids, +1)
        _postings(conn, ids, +1)
    else:
        conn.execute(text("INSERT INTO chunks_fts (rowid, text, title, heading) VALUES (:id, :text, :title, :heading)"),
                     rows)
        conn.execute(text(f"INSERT INTO keyword_levels (chunk_id, level) SELECT c.id, {LEVEL} FROM chunks c "
                          f"JOIN documents d ON d.id = c.doc_id WHERE c.id IN {_IDS}"), {"ids": json.dumps(ids)})
        _readers(conn, ids, +1)


def remove(conn: Connection, ids: np.ndarray) -> None:
    if not len(ids):
        return
    ids = [int(i) for i in ids]
    if conn.dialect.name == "postgresql":
        _term_stats(conn, ids, -1)
        _postings(conn, ids, -1)
        conn.execute(text("DELETE FROM chunk_search WHERE chunk_id = ANY(:ids)"), {"ids": ids})
    else:
        _readers(conn, ids, -1)
        conn.execute(text(f"DELETE FROM keyword_levels WHERE chunk_id IN {_IDS}"), {"ids": json.dumps(ids)})
        conn.execute(text("DELETE FROM chunks_fts WHERE rowid = :id"), [{"id": i} for i in ids])


def retitle(conn: Connection, doc_id: int, title: str) -> None:
    ids = list(conn.execute(select(chunks.c.id).where(chunks.c.doc_id == doc_id)).scalars())
    if conn.dialect.name == "postgresql":
        _term_stats(conn, ids, -1)
        _postings(conn, ids, -1)
        terms = PG_TERMS.format(text="c.text", heading="c.heading", title=":title")
        conn.execute(text(f"UPDATE chunk_search s SET terms = {terms} FROM chunks c "
                          "WHERE c.id = s.chunk_id AND c.doc_id = :d"), {"title": title, "d": doc_id})
        conn.execute(text(f"UPDATE chunk_search SET length = {PG_LENGTH.format(v='terms')}, "
                          f"(lexemes, tfs) = ({PG_ARRAYS.format(v='terms')}) WHERE chunk_id = ANY(:ids)"), {"ids": ids})
        _term_stats(conn, ids, +1)
        _postings(conn, ids, +1)
    else:
        _readers(conn, ids, -1)  # out with the words they went in with
        conn.execute(text("UPDATE chunks_fts SET title = :title WHERE rowid IN (SELECT id FROM chunks WHERE doc_id = :d)"),
                     {"title": title, "d": doc_id})
        _readers(conn, ids, +1)


def relevel(conn: Connection, doc_id: int) -> None:
    """Move a document's chunks to the keyword level its visibility and status now give them."""
    if conn.dialect.name == "postgresql":
        moved = list(conn.execute(text(
            f"SELECT s.chunk_id FROM chunk_search s JOIN chunks c ON c.id = s.chunk_id "
            f"JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = :d AND s.level <> {LEVEL}"), {"d": doc_id}).scalars())
        _term_stats(conn, moved, -1)
        conn.execute(text(f"UPDATE chunk_search s SET level = {LEVEL} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                          "WHERE c.id = s.chunk_id AND s.chunk_id = ANY(:ids)"), {"ids": moved})
        _term_stats(conn, moved, +1)
    else:
        moved = list(conn.execute(text(
            f"SELECT l.chunk_id FROM keyword_levels l JOIN chunks c ON c.id = l.chunk_id "
            f"JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = :d AND l.level <> {LEVEL}"), {"d": doc_id}).scalars())
        _readers(conn, moved, -1)
        conn.execute(text(f"UPDATE keyword_levels SET level = (SELECT {LEVEL} FROM chunks c JOIN documents d "
                          f"ON d.id = c.doc_id WHERE c.id = keyword_levels.chunk_id) WHERE chunk_id IN {_IDS}"),
                     {"ids": json.dumps(moved)})
        _readers(conn, moved, +1)


_IDS = "(SELECT value FROM json_each(:ids))"  # SQLite: a JSON list of ids as a set, any length


def _readers(conn: Connection, ids: list[int], sign: int) -> None:
    """SQLite: add (+1) or remove (-1) these chunks in the lower readers' indexes, as their
    recorded levels place them. Those indexes are contentless: a removal repeats the words it
    removes, read from `chunks_fts`, which is kept as it was when they went in."""
    if not ids:
        return
    for level, fts in enumerate(READER_INDEXES[:-1]):
        columns = f"{fts}, rowid, text, title, heading" if sign < 0 else "rowid, text, title, heading"
        values = "'delete', f.rowid, f.text, f.title, f.heading" if sign < 0 else "f.rowid, f.text, f.title, f.heading"
        conn.execute(text(f"INSERT INTO {fts} ({columns}) SELECT {values} FROM keyword_levels l "
                          f"CROSS JOIN chunks_fts f ON f.rowid = l.chunk_id "
                          f"WHERE l.level <= {level} AND l.chunk_id IN {_IDS}"), {"ids": json.dumps(ids)})


def _term_stats(conn: Connection, ids: list[int], sign: int) -> None:
    """PostgreSQL: count these chunks in (+1) or out (-1) of their level's BM25 statistics."""
    if not ids:
        return
    conn.execute(text(
        "INSERT INTO term_stats (term, level, df) SELECT lexeme, level, :sign * count(*) FROM chunk_search, "
        "unnest(tsvector_to_array(terms)) AS lexeme WHERE chunk_id = ANY(:ids) GROUP BY lexeme, level "
        "ON CONFLICT (term, level) DO UPDATE SET df = term_stats.df + excluded.df"), {"ids": ids, "sign": sign})
    conn.execute(text(
        "INSERT INTO meta (key, value) SELECT c.k || '_' || x.level, (:sign * c.v)::text FROM (SELECT level, "
        "count(*) AS n, coalesce(sum(length), 0) AS total FROM chunk_search WHERE chunk_id = ANY(:ids) GROUP BY level) AS x, "
        "LATERAL (VALUES ('keyword_chunks', x.n), ('keyword_length', x.total)) AS c(k, v) "
        "ON CONFLICT (key) DO UPDATE SET value = (CAST(meta.value AS bigint) + CAST(excluded.value AS bigint))::text"),
        {"ids": ids, "sign": sign})


REBASE = 1.25  # postings' impacts are computed again when the average length drifts this far from theirs
ALL_POSTINGS = ("SELECT u.term, kb_impact(u.tf, s.length, r.avgdl) AS impact, s.chunk_id "
                "FROM chunk_search s, unnest(s.lexemes, s.tfs) AS u(term, tf), (SELECT CAST(value AS float8) AS avgdl FROM meta "
                "WHERE key = 'keyword_ref_avgdl') AS r")
POSTINGS = f"{ALL_POSTINGS} WHERE s.chunk_id = ANY(:ids)"


def _postings(conn: Connection, ids: list[int], sign: int) -> None:
    """PostgreSQL: add (+1) or remove (-1) these chunks' impact-ordered postings (after their
    terms are counted in, before they are counted out). The impacts are computed against the
    reference average length, which is set by the first chunks and moved, with every impact, when
    the collection's average drifts from it: a stale reference only makes searches read deeper."""
    if not ids:
        return
    if sign > 0:
        if not _rebased(conn):
            conn.execute(text(f"INSERT INTO term_postings (term, impact, chunk_id) {POSTINGS}"), {"ids": ids})
    else:
        conn.execute(text(f"DELETE FROM term_postings p USING ({POSTINGS}) AS x "
                          "WHERE p.term = x.term AND p.impact = x.impact AND p.chunk_id = x.chunk_id"), {"ids": ids})


def _rebased(conn: Connection) -> bool:
    """Move the reference length to the collection's average if it drifted; True if that wrote
    every chunk's postings anew (the new chunks' included)."""
    stats = dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(STATS))).all())
    chunks_n, length = _totals(stats, max(LEVELS))
    avgdl = max(length / chunks_n, 1.0) if chunks_n else 1.0
    ref = float(stats["keyword_ref_avgdl"]) if "keyword_ref_avgdl" in stats else None
    if ref is not None and 1 / REBASE <= avgdl / ref <= REBASE:
        return False
    conn.execute(text("INSERT INTO meta (key, value) VALUES ('keyword_ref_avgdl', :v) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value"), {"v": repr(avgdl)})
    if ref is None:
        return False
    conn.execute(text("DELETE FROM term_postings"))  # rare: the average settles as a collection grows
    conn.execute(text(f"INSERT INTO term_postings (term, impact, chunk_id) {ALL_POSTINGS}"))
    return True
