"""The store: documents, chunks, the embedding cache and the keyword index, behind one interface.

Every query kb runs is built here or in the other modules of this package, from the tables in
`schema.py`; callers get typed rows (`Document`, `ChunkRow`, `Passage`), never a cursor. Writes
happen inside `transaction()`, whose connection the write methods take as their first argument.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
from sqlalchemy import (Connection, bindparam, column, delete, exists, func, insert, literal, literal_column, select,
                        table, text, union, update)
from sqlalchemy import Float, Text, cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError

from ..errors import BadRequest, DatabaseUnavailable, NotFound
from ..models import ChunkRow, Chunk, DocMeta, Document, Filters, Passage
from .accounts import AccountRows
from .audit import AuditRows
from .database import Database, now
from .filters import conditions, tag_values
from .jobs import JobRows
from .migrate import upgrade
from .schema import chunk_search, chunks, doc_bands, documents, embeddings, meta, term_stats
from .sqlite_migrations import EDITABLE_FIELDS, migrate
from .themes import ThemeRows

EDITABLE = EDITABLE_FIELDS
SORTABLE = ("id", "title", "doc_type", "site", "published", "visibility", "status", "added_at", "updated_at")
BM25 = "bm25(chunks_fts, 1.0, 0.6, 0.8)"  # column weights: text, title, headings
KEYWORD_HEAD = 4  # keyword search ranks limit × this many matches before filtering them
DOC_FIELDS = ("id", "source", "sha256", "title", "doc_type", "site", "partnership", "published", "tags",
              "visibility", "status", "added_at", "updated_at", "original_name", "mime", "stored_path",
              "source_publication", "original_title", "dup_of", "edited", "source_sha")
CHUNK_COUNT = (select(func.count()).where(chunks.c.doc_id == documents.c.id)
               .correlate(documents).scalar_subquery().label("chunk_count"))
FTS = table("chunks_fts", column("rowid"))  # FTS5's virtual table, made by the SQLite migrations
ROW_COLUMNS = (chunks.c.id, chunks.c.doc_id, chunks.c.ordinal, chunks.c.text, chunks.c.heading, chunks.c.page,
               chunks.c.char_start, chunks.c.char_end, documents.c.title, documents.c.source, documents.c.site,
               documents.c.doc_type, documents.c.published, documents.c.tags, documents.c.dup_of,
               documents.c.visibility, documents.c.status)

# statements a search runs every time, built once
CHUNK_ROWS = (select(*ROW_COLUMNS).join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
              .where(chunks.c.id.in_(bindparam("ids", expanding=True))))
CHUNK_ROWS_SQLITE = (
    "SELECT c.id, c.doc_id, c.ordinal, c.text, c.heading, c.page, c.char_start, c.char_end, d.title, d.source, "
    "d.site, d.doc_type, d.published, d.tags, d.dup_of, d.visibility, d.status "
    "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})")
KEYWORD_HEAD_SQL = (f"SELECT rowid, {BM25} AS rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?")


class EmbeddingSource(NamedTuple):
    title: str
    original_name: str | None
    source: str
    heading: str
    text: str


class Store:
    def __init__(self, where: Path | str):
        """Open (and bring up to date) the database at `where`: an SQLite file's path or a
        `postgresql://` URL."""
        self.db = Database.open(where)
        self.path = Path(where) if self.db.dialect == "sqlite" else None
        if self.db.dialect == "sqlite":
            self._migrate()
        try:
            upgrade(self.db)
        except OperationalError as exc:
            if self.db.dialect == "sqlite":
                raise
            where = self.db.engine.url.render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise DatabaseUnavailable(f"cannot reach the database at {where}: {reason}") from None
        self.accounts = AccountRows(self.db)
        self.audit = AuditRows(self.db)
        self.jobs = JobRows(self.db)
        self.themes = ThemeRows(self.db)

    def _migrate(self) -> None:
        """SQLite's numbered migrations (before Alembic). Two processes opening a new store at once both try; the
        one that waited finds the tables made ("already exists"), rolls back and looks again."""
        import sqlite3

        raw = self.db.raw_sqlite()
        try:
            for attempt in range(3):
                try:
                    migrate(raw.driver_connection)
                    return
                except sqlite3.OperationalError:
                    if raw.driver_connection.in_transaction:
                        raw.driver_connection.execute("ROLLBACK")
                    if attempt == 2:
                        raise
        finally:
            raw.close()

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def keeps_vectors(self) -> bool:
        """PostgreSQL keeps the vectors and the originals; with SQLite they are files (FAISS, files/)."""
        return self.dialect == "postgresql"

    def close(self) -> None:
        self.db.close()

    def analyze(self) -> None:
        """PostgreSQL: refresh the planner's statistics of the tables a search reads."""
        if self.dialect == "postgresql":
            with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE documents, chunks, chunk_vectors, chunk_search, term_stats"))

    def transaction(self, bump: str | None = "generation"):
        return self.db.transaction(bump)

    def generation(self) -> int:
        return self.db.counter("generation")

    def revision(self) -> tuple[int, int]:
        """(generation, metadata revision): changes whenever search results could change."""
        return self.db.counters()

    # documents -----------------------------------------------------------------------------

    def get(self, doc_id: int, visibility: tuple[str, ...] | None = None) -> Document:
        with self.db.read() as conn:
            row = conn.execute(select(*_doc_columns(), CHUNK_COUNT).where(documents.c.id == doc_id)).first()
        if row is None or (visibility is not None and row.visibility not in visibility):
            raise NotFound(f"no document {doc_id}")
        return _document(row)

    def find(self, source: str) -> Document | None:
        with self.db.read() as conn:
            doc_id = conn.execute(select(documents.c.id).where(documents.c.source == source)).scalar()
        return self.get(doc_id) if doc_id is not None else None

    def find_by_sha(self, sha256: str, or_source: bool = False) -> Document | None:
        """The first document holding these bytes; with `or_source`, also one whose file at its
        source had them when last read (an upload has replaced its content since)."""
        match = documents.c.sha256 == sha256
        if or_source:
            match = match | (documents.c.source_sha == sha256)
        with self.db.read() as conn:
            doc_id = conn.execute(select(documents.c.id).where(match).order_by(documents.c.id).limit(1)).scalar()
        return self.get(doc_id) if doc_id is not None else None

    def documents(self, filters: Filters | None = None, include_retired: bool = False,
                  sort: str = "id", descending: bool = False, limit: int = 10_000,
                  offset: int = 0) -> list[Document]:
        if sort not in SORTABLE:
            raise BadRequest(f"cannot sort by {sort!r}; use one of {', '.join(SORTABLE)}")
        column = documents.c[sort]
        query = (select(*_doc_columns(), CHUNK_COUNT)
                 .where(conditions(filters or Filters(), dialect=self.dialect, include_retired=include_retired))
                 .order_by(column.desc() if descending else column.asc(), documents.c.id)
                 .limit(limit).offset(offset))
        with self.db.read() as conn:
            return [_document(r) for r in conn.execute(query)]

    def body(self, doc_id: int) -> str:
        with self.db.read() as conn:
            body = conn.execute(select(documents.c.body).where(documents.c.id == doc_id)).scalar()
        if body is None:
            raise NotFound(f"no document {doc_id}")
        return body

    def file_in_use(self, stored_path: str) -> bool:
        """Whether any document still keeps its original in this stored file."""
        with self.db.read() as conn:
            return conn.execute(select(exists().where(documents.c.stored_path == stored_path))).scalar()

    def near_duplicate_candidates(self, bands: list[str]) -> list[tuple[int, bytes]]:
        """Documents sharing an LSH band with a signature, with their own signatures."""
        if not bands:
            return []
        query = (select(documents.c.id, documents.c.signature).distinct()
                 .join_from(doc_bands, documents, documents.c.id == doc_bands.c.doc_id)
                 .where(doc_bands.c.band.in_(bands)).order_by(documents.c.id))
        with self.db.read() as conn:
            return [(r.id, r.signature) for r in conn.execute(query)]

    def add_bands(self, conn: Connection, doc_id: int, bands: list[str]) -> None:
        if bands:
            conn.execute(_insert_ignore(doc_bands, self.dialect), [{"band": b, "doc_id": doc_id} for b in dict.fromkeys(bands)])

    def add_document(self, conn: Connection, source: str, sha256: str, meta: DocMeta, body: str, *,
                     mime: str | None = None, original_name: str | None = None,
                     stored_path: str | None = None, signature: bytes | None = None,
                     dup_of: int | None = None, dup_score: float | None = None,
                     source_sha: str | None = None) -> int:
        stamp = now()
        return int(conn.execute(insert(documents).values(
            source=source, sha256=sha256, **_meta_values(meta), added_at=stamp, updated_at=stamp,
            original_name=original_name, mime=mime, stored_path=stored_path, body=body, signature=signature,
            dup_of=dup_of, dup_score=dup_score, source_sha=source_sha)).inserted_primary_key[0])

    def add_chunks(self, conn: Connection, doc_id: int, new: list[Chunk], hashes: list[str], title: str) -> list[int]:
        ids = []
        for chunk, text_hash in zip(new, hashes):
            chunk_id = conn.execute(insert(chunks).values(
                doc_id=doc_id, ordinal=chunk.ordinal, text=chunk.text, heading=chunk.heading, page=chunk.page,
                char_start=chunk.char_start, char_end=chunk.char_end, tokens=chunk.tokens,
                text_hash=text_hash)).inserted_primary_key[0]
            ids.append(int(chunk_id))
        keyword_add(conn, [(i, c.text, title, c.heading) for i, c in zip(ids, new)])
        return ids

    def chunk_ids(self, conn: Connection | None = None, doc_id: int | None = None) -> np.ndarray:
        query = select(chunks.c.id).order_by(chunks.c.id)
        if doc_id is not None:
            query = query.where(chunks.c.doc_id == doc_id)
        if conn is None:
            with self.db.read() as c:
                found = c.execute(query).scalars().all()
        else:
            found = conn.execute(query).scalars().all()
        return np.asarray(found, dtype=np.int64)

    def replace_document(self, conn: Connection, doc_id: int, sha256: str, meta: DocMeta, body: str, *,
                         edited: list[str], mime: str | None, original_name: str | None, stored_path: str | None,
                         signature: bytes | None, dup_of: int | None, dup_score: float | None,
                         source_sha: str | None) -> np.ndarray:
        """New content for a stored document, in place: its id, status and added date stay.
        Returns the old chunk ids whose vectors must go."""
        ids = self.chunk_ids(conn, doc_id)
        keyword_remove(conn, ids)
        conn.execute(delete(chunks).where(chunks.c.doc_id == doc_id))
        conn.execute(delete(doc_bands).where(doc_bands.c.doc_id == doc_id))
        conn.execute(update(documents).where(documents.c.id == doc_id).values(
            sha256=sha256, **_meta_values(meta), updated_at=now(), original_name=original_name, mime=mime,
            stored_path=stored_path, body=body, signature=signature, dup_of=dup_of, dup_score=dup_score,
            edited=json.dumps(edited), source_sha=source_sha))
        return ids

    def move(self, conn: Connection, doc_id: int, source: str) -> None:
        """A document's file moved: its source and file name follow."""
        conn.execute(update(documents).where(documents.c.id == doc_id).values(
            source=source, original_name=os.path.basename(source), updated_at=now()))

    def delete_document(self, conn: Connection, doc_id: int) -> np.ndarray:
        """Delete a document with its chunks and the cached vectors no other passage shares;
        returns the chunk ids whose vectors must leave the index too."""
        ids = self.chunk_ids(conn, doc_id)
        hashes = self.chunk_hashes(conn, doc_id)
        keyword_remove(conn, ids)
        conn.execute(delete(chunks).where(chunks.c.doc_id == doc_id))
        self.forget_vectors(conn, hashes)
        conn.execute(update(documents).where(documents.c.dup_of == doc_id).values(dup_of=None))
        conn.execute(delete(documents).where(documents.c.id == doc_id))
        return ids

    def update_meta(self, conn: Connection, doc_id: int, changes: dict, by_curator: bool = False) -> None:
        """Change curated metadata; search sees it at once, nothing is re-embedded. A curator's
        changes are remembered as theirs, so that a re-ingest does not undo them."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise BadRequest(f"cannot edit {', '.join(sorted(unknown))}")
        if "tags" in changes:
            changes = {**changes, "tags": json.dumps(list(changes["tags"]))}
        if not changes:
            return
        if by_curator:
            before = conn.execute(select(documents.c.edited).where(documents.c.id == doc_id)).scalar()
            changes = {**changes, "edited": json.dumps(sorted({*json.loads(before or "[]"), *changes}))}
        conn.execute(update(documents).where(documents.c.id == doc_id).values(**changes, updated_at=now()))
        if "title" in changes:
            keyword_retitle(conn, doc_id, changes["title"])

    def set_status(self, conn: Connection, doc_id: int, status: str) -> None:
        conn.execute(update(documents).where(documents.c.id == doc_id).values(status=status, updated_at=now()))

    # embeddings ------------------------------------------------------------------------------

    def cached_vectors(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self.db.read() as conn:
            for i in range(0, len(unique), 500):
                part = unique[i:i + 500]
                for text_hash, blob in conn.execute(select(embeddings.c.text_hash, embeddings.c.vector).where(
                        embeddings.c.model == model, embeddings.c.text_hash.in_(part))):
                    out[text_hash] = np.frombuffer(blob, dtype=np.float32)
        return out

    def chunk_hashes(self, conn: Connection, doc_id: int) -> list[str]:
        return list(conn.execute(select(chunks.c.text_hash).distinct().where(chunks.c.doc_id == doc_id)).scalars())

    def forget_vectors(self, conn: Connection, hashes: list[str]) -> None:
        """Drop cached vectors (every model's) of texts that no stored passage holds any more."""
        if hashes:
            held = exists().where(chunks.c.text_hash == embeddings.c.text_hash)
            conn.execute(delete(embeddings).where(embeddings.c.text_hash == bindparam("h"), ~held),
                         [{"h": h} for h in hashes])

    def cache_vectors(self, conn: Connection, model: str, vectors: dict[str, np.ndarray]) -> None:
        if vectors:
            conn.execute(_insert_ignore(embeddings, self.dialect), [
                {"model": model, "text_hash": h, "vector": np.asarray(v, dtype=np.float32).tobytes()}
                for h, v in vectors.items()])

    def chunk_vectors(self, model: str) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
        """Every chunk id with its text hash, and the cached vectors found for this model."""
        with self.db.read() as conn:
            rows = conn.execute(select(chunks.c.id, chunks.c.text_hash).order_by(chunks.c.id)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        hashes = [r[1] for r in rows]
        return ids, hashes, self.cached_vectors(model, hashes)

    def embedding_sources(self, hashes: list[str]) -> dict[str, EmbeddingSource]:
        """For each text hash, a passage holding it with what its embedding input was made from."""
        out: dict[str, EmbeddingSource] = {}
        with self.db.read() as conn:
            for i in range(0, len(hashes), 500):
                query = (select(chunks.c.text_hash, documents.c.title, documents.c.original_name, documents.c.source,
                                chunks.c.heading, chunks.c.text)
                         .join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
                         .where(chunks.c.text_hash.in_(hashes[i:i + 500])))
                for row in conn.execute(query):
                    out[row[0]] = EmbeddingSource(*row[1:])
        return out

    # search ----------------------------------------------------------------------------------

    def allowed_chunk_ids(self, filters: Filters) -> np.ndarray:
        query = (select(chunks.c.id).join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
                 .where(conditions(filters, dialect=self.dialect)))
        with self.db.read() as conn:
            return np.asarray(conn.execute(query).scalars().all(), dtype=np.int64)

    def keyword_search(self, words: list[str], filters: Filters, limit: int,
                       admitted: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Keyword relevance over chunk text, title and headings (any of the query's words);
        higher scores are better. SQLite: FTS5's BM25. PostgreSQL: see `_keyword_postgres`.

        FTS5 ranks its own top few hundred first and only those are checked against the filters
        (against `admitted`, the sorted chunk ids the filters admit, when the caller has them):
        ranking every match joined to its document cost three times as much. When too few of them
        pass (a narrow filter), the full filtered query runs; either way the result is the same.
        """
        if not words:
            return []
        if self.dialect == "postgresql":
            return self._keyword_postgres(words, filters, limit)
        match = " OR ".join(f'"{w}"' for w in words)  # quoted tokens: FTS5 syntax in a query is plain words
        wanted = KEYWORD_HEAD * limit
        with self.db.sqlite_read() as raw:  # FTS5's own SQL, on sqlite3 itself (see Database.sqlite_read)
            head = raw.execute(KEYWORD_HEAD_SQL, (match, wanted)).fetchall()
        ids = np.fromiter((r[0] for r in head), dtype=np.int64, count=len(head))
        if admitted is not None:
            at = np.searchsorted(admitted, ids).clip(max=max(len(admitted) - 1, 0))
            passed = set(ids[admitted[at] == ids].tolist()) if len(admitted) else set()
        elif len(ids):
            with self.db.read() as conn:
                passed = set(conn.execute(
                    select(chunks.c.id).join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
                    .where(chunks.c.id.in_(ids.tolist()), conditions(filters, dialect=self.dialect))).scalars())
        else:
            passed = set()
        kept = [(int(i), -float(rank)) for i, rank in head if i in passed][:limit]
        if len(kept) == limit or len(head) < wanted:
            return kept
        query = (select(FTS.c.rowid, literal_column(BM25).label("rank"))
                 .select_from(FTS.join(chunks, chunks.c.id == FTS.c.rowid)
                              .join(documents, documents.c.id == chunks.c.doc_id))
                 .where(text("chunks_fts MATCH :m"), conditions(filters, dialect=self.dialect))
                 .order_by(text("rank")).limit(limit))
        with self.db.read() as conn:
            rows = conn.execute(query, {"m": match}).all()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _keyword_postgres(self, words: list[str], filters: Filters, limit: int) -> list[tuple[int, float]]:
        """PostgreSQL: the chunks matching any word (the GIN index), ranked by BM25 as FTS5 ranks
        them (the `kb_bm25` function, from the term statistics kept beside the index), filters
        inside the query. ts_rank_cd lost 0.045-0.075 nDCG@10 against it (docs/scale-out.md)."""
        query = func.to_tsquery("english", " | ".join(words))  # words are letters and digits only (kb.query.terms)
        with self.db.read() as conn:
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

    def chunk_rows(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        ids = [int(i) for i in ids]
        if self.dialect == "sqlite":  # every search: sqlite3 itself (see Database.sqlite_read)
            with self.db.sqlite_read() as raw:
                rows = raw.execute(CHUNK_ROWS_SQLITE.format(marks=", ".join("?" * len(ids))), ids).fetchall()
        else:
            with self.db.read() as conn:
                rows = conn.execute(CHUNK_ROWS, {"ids": ids}).all()
        return {r[0]: ChunkRow(*r[:13], json.loads(r[13] or "[]"), *r[14:]) for r in rows}

    def chunks_of(self, doc_id: int) -> list[Passage]:
        query = (select(chunks.c.id, chunks.c.ordinal, chunks.c.text, chunks.c.heading, chunks.c.page,
                        chunks.c.char_start, chunks.c.char_end, chunks.c.tokens)
                 .where(chunks.c.doc_id == doc_id).order_by(chunks.c.ordinal))
        with self.db.read() as conn:
            return [Passage(*r) for r in conn.execute(query)]

    def duplicates_of(self, doc_id: int) -> list[int]:
        """Documents recorded as near-duplicates of this one, in either direction."""
        query = union(select(documents.c.id).where(documents.c.dup_of == doc_id),
                      select(documents.c.dup_of).where(documents.c.id == doc_id, documents.c.dup_of.is_not(None)))
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def counts(self, column: str, filters: Filters) -> list[tuple[str, int]]:
        expr = {"site": documents.c.site, "doc_type": documents.c.doc_type,
                "year": func.substr(documents.c.published, 1, 4), "visibility": documents.c.visibility}[column]
        value, n = expr.label("v"), func.count().label("n")
        query = (select(value, n).where(conditions(filters, dialect=self.dialect), expr.is_not(None))
                 .group_by(expr).order_by(n.desc(), expr))
        with self.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

    def tag_counts(self, filters: Filters) -> list[tuple[str, int]]:
        each = tag_values(documents, self.dialect)
        n = func.count().label("n")
        query = (select(each.c.value, n).select_from(documents).join(each, literal(True))
                 .where(conditions(filters, dialect=self.dialect))
                 .group_by(each.c.value).order_by(n.desc(), each.c.value))
        with self.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

    def is_visible(self, doc_id: int, visibility: tuple[str, ...]) -> bool:
        """Active and visible to a reader with this visibility."""
        return self.count_documents(Filters(doc_ids=[doc_id], visibility=visibility)) > 0

    def count_documents(self, filters: Filters) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(documents)
                                .where(conditions(filters, dialect=self.dialect))).scalar()

    def count(self, table: str = "documents") -> int:
        tables = {"documents": documents, "chunks": chunks, "embeddings": embeddings}
        if table not in tables:
            raise ValueError(table)
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(tables[table])).scalar()


# the keyword index: FTS5's own table, kept in step with `chunks` -----------------------------

PG_LENGTH = "coalesce((SELECT max(p) FROM unnest({v}) AS u, unnest(u.positions) AS p), 0)"  # tokens, as FTS5 counts
PG_TERMS = ("setweight(to_tsvector('english', {text}), 'A') || setweight(to_tsvector('english', {heading}), 'B') "
            "|| setweight(to_tsvector('english', {title}), 'C')")


def keyword_add(conn: Connection, rows: Iterable[tuple[int, str, str, str]]) -> None:
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


def keyword_remove(conn: Connection, ids: np.ndarray) -> None:
    if not len(ids):
        return
    if conn.dialect.name == "postgresql":
        _term_stats(conn, [int(i) for i in ids], -1)
        conn.execute(text("DELETE FROM chunk_search WHERE chunk_id = ANY(:ids)"), {"ids": [int(i) for i in ids]})
    else:
        conn.execute(text("DELETE FROM chunks_fts WHERE rowid = :id"), [{"id": int(i)} for i in ids])


def keyword_retitle(conn: Connection, doc_id: int, title: str) -> None:
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


def _insert_ignore(table, dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table).on_conflict_do_nothing()
    return insert(table).prefix_with("OR IGNORE")


def _doc_columns():
    return [documents.c[name] for name in DOC_FIELDS]


def _meta_values(meta: DocMeta) -> dict:
    return {"title": meta.title or "", "doc_type": meta.doc_type, "site": meta.site,
            "partnership": meta.partnership, "published": meta.published, "tags": json.dumps(meta.tags),
            "visibility": meta.visibility or "public", "source_publication": meta.source_publication,
            "original_title": meta.original_title}


def _document(row) -> Document:
    data = dict(row._mapping)
    data["tags"] = json.loads(data.get("tags") or "[]")
    data["edited"] = json.loads(data.get("edited") or "[]")
    return Document(**data)


__all__ = ["Store", "SORTABLE", "EDITABLE", "OperationalError", "now"]
