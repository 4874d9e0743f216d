"""The keyword index, the one part each database keeps its own way.

SQLite: FTS5's virtual table `chunks_fts` (porter stemming), ranked by FTS5's bm25(). PostgreSQL: a
weighted tsvector per chunk in `chunk_search` (GIN index, `english` configuration), ranked by BM25
computed in SQL (`kb_bm25`, Alembic revision 0002) with FTS5's k1, b and column weights, from term
statistics kept here as chunks come and go: ts_rank_cd lost 0.045-0.075 nDCG@10 against it
(docs/scale-out.md). Filters, visibility included, are applied inside both.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from sqlalchemy import Connection, Float, Text, cast, column, func, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import ARRAY

from ..models import Filters
from .database import Database
from .filters import conditions
from .schema import chunk_search, chunks, documents, meta, term_stats

BM25 = "bm25(chunks_fts, 1.0, 0.6, 0.8)"  # column weights: text, title, headings
KEYWORD_HEAD = 4  # keyword search ranks limit × this many matches before filtering them
FTS = table("chunks_fts", column("rowid"))  # FTS5's virtual table, made by the SQLite migrations
KEYWORD_HEAD_SQL = (f"SELECT rowid, {BM25} AS rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?")


def search_sqlite(db: Database, words: list[str], filters: Filters, limit: int,
                  admitted: np.ndarray | None = None) -> list[tuple[int, float]]:
    """FTS5's BM25. FTS5 ranks its own top few hundred first and only those are checked against the
    filters (against `admitted`, the sorted chunk ids the filters admit, when the caller has them):
    ranking every match joined to its document cost three times as much. When too few of them
    pass (a narrow filter), the full filtered query runs; either way the result is the same."""
    match = " OR ".join(f'"{w}"' for w in words)  # quoted tokens: FTS5 syntax in a query is plain words
    wanted = KEYWORD_HEAD * limit
    with db.sqlite_read() as raw:  # FTS5's own SQL, on sqlite3 itself (see Database.sqlite_read)
        head = raw.execute(KEYWORD_HEAD_SQL, (match, wanted)).fetchall()
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
    query = (select(FTS.c.rowid, literal_column(BM25).label("rank"))
             .select_from(FTS.join(chunks, chunks.c.id == FTS.c.rowid)
                          .join(documents, documents.c.id == chunks.c.doc_id))
             .where(text("chunks_fts MATCH :m"), conditions(filters, dialect="sqlite"))
             .order_by(text("rank")).limit(limit))
    with db.read() as conn:
        rows = conn.execute(query, {"m": match}).all()
    return [(int(r[0]), -float(r[1])) for r in rows]


def search_postgres(db: Database, words: list[str], filters: Filters, limit: int) -> list[tuple[int, float]]:
    """PostgreSQL: the chunks matching any word (the GIN index), ranked by BM25 as FTS5 ranks
    them (the `kb_bm25` function, from the term statistics kept beside the index), filters
    inside the query. ts_rank_cd lost 0.045-0.075 nDCG@10 against it (docs/scale-out.md)."""
    query = func.to_tsquery("english", " | ".join(words))  # words are letters and digits only (kb.query.terms)
    with db.read() as conn:
        stats = dict(conn.execute(select(meta.c.key, meta.c.value)
                                  .where(meta.c.key.in_(("keyword_chunks", "keyword_length")))).all())
        chunks_n, length = int(stats.get("keyword_chunks", 0)), int(stats.get("keyword_length", 0))
        found = conn.execute(select(term_stats.c.term, term_stats.c.df).where(term_stats.c.term == func.any(
            func.tsvector_to_array(func.to_tsvector("english", " ".join(words)))))).all()
        if not found or not chunks_n:
            return []
        lexemes = [t for t, _ in found]
        idf = [max(math.log((chunks_n - df + 0.5) / (df + 0.5)), 1e-6) for _, df in found]
        score = func.kb_bm25(chunk_search.c.terms, chunk_search.c.length, cast(lexemes, ARRAY(Text)),
                             cast(idf, ARRAY(Float)), max(length / chunks_n, 1.0)).label("score")
        statement = (select(chunk_search.c.chunk_id, score)
                     .join_from(chunk_search, chunks, chunks.c.id == chunk_search.c.chunk_id)
                     .join(documents, documents.c.id == chunks.c.doc_id)
                     .where(chunk_search.c.terms.op("@@")(query), conditions(filters, dialect="postgresql"))
                     .order_by(score.desc(), chunk_search.c.chunk_id).limit(limit))
        return [(int(i), float(r)) for i, r in conn.execute(statement)]


PG_LENGTH = "coalesce((SELECT max(p) FROM unnest({v}) AS u, unnest(u.positions) AS p), 0)"  # tokens, as FTS5 counts
PG_TERMS = ("setweight(to_tsvector('english', {text}), 'A') || setweight(to_tsvector('english', {heading}), 'B') "
            "|| setweight(to_tsvector('english', {title}), 'C')")


def add(conn: Connection, rows: Iterable[tuple[int, str, str, str]]) -> None:
    rows = [{"id": i, "text": t, "title": title, "heading": h} for i, t, title, h in rows]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        terms = PG_TERMS.format(text=":text", heading=":heading", title=":title")
        conn.execute(text(f"INSERT INTO chunk_search (chunk_id, terms, length) SELECT :id, t, {PG_LENGTH.format(v='t')} "
                          f"FROM (SELECT {terms}) AS x(t)"), rows)
        _term_stats(conn, [r["id"] for r in rows], +1)
    else:
        conn.execute(text("INSERT INTO chunks_fts (rowid, text, title, heading) VALUES (:id, :text, :title, :heading)"),
                     rows)


def remove(conn: Connection, ids: np.ndarray) -> None:
    if not len(ids):
        return
    if conn.dialect.name == "postgresql":
        _term_stats(conn, [int(i) for i in ids], -1)
        conn.execute(text("DELETE FROM chunk_search WHERE chunk_id = ANY(:ids)"), {"ids": [int(i) for i in ids]})
    else:
        conn.execute(text("DELETE FROM chunks_fts WHERE rowid = :id"), [{"id": int(i)} for i in ids])


def retitle(conn: Connection, doc_id: int, title: str) -> None:
    if conn.dialect.name == "postgresql":
        ids = list(conn.execute(select(chunks.c.id).where(chunks.c.doc_id == doc_id)).scalars())
        _term_stats(conn, ids, -1)
        terms = PG_TERMS.format(text="c.text", heading="c.heading", title=":title")
        conn.execute(text(f"UPDATE chunk_search s SET terms = {terms} FROM chunks c "
                          "WHERE c.id = s.chunk_id AND c.doc_id = :d"), {"title": title, "d": doc_id})
        conn.execute(text(f"UPDATE chunk_search SET length = {PG_LENGTH.format(v='terms')} WHERE chunk_id = ANY(:ids)"),
                     {"ids": ids})
        _term_stats(conn, ids, +1)
    else:
        conn.execute(text("UPDATE chunks_fts SET title = :title WHERE rowid IN (SELECT id FROM chunks WHERE doc_id = :d)"),
                     {"title": title, "d": doc_id})


def _term_stats(conn: Connection, ids: list[int], sign: int) -> None:
    """PostgreSQL: count these chunks in (+1) or out (-1) of the BM25 statistics."""
    if not ids:
        return
    conn.execute(text(
        "INSERT INTO term_stats (term, df) SELECT lexeme, :sign * count(*) FROM chunk_search, "
        "unnest(tsvector_to_array(terms)) AS lexeme WHERE chunk_id = ANY(:ids) GROUP BY lexeme "
        "ON CONFLICT (term) DO UPDATE SET df = term_stats.df + excluded.df"), {"ids": ids, "sign": sign})
    conn.execute(text(
        "INSERT INTO meta (key, value) SELECT k, (:sign * v)::text FROM (SELECT count(*) AS n, "
        "coalesce(sum(length), 0) AS total FROM chunk_search WHERE chunk_id = ANY(:ids)) AS x, "
        "LATERAL (VALUES ('keyword_chunks', x.n), ('keyword_length', x.total)) AS c(k, v) "
        "ON CONFLICT (key) DO UPDATE SET value = (CAST(meta.value AS bigint) + CAST(excluded.value AS bigint))::text"),
        {"ids": ids, "sign": sign})
