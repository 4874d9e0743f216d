"""The store: documents, chunks, the embedding cache and the keyword index, behind one interface.

Every query kb runs is built here or in the other modules of this package, from the tables in
`schema.py`; callers get typed rows (`Document`, `ChunkRow`, `Passage`), never a cursor. Writes
happen inside `transaction()`, whose connection the write methods take as their first argument.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import Connection, Integer, bindparam, delete, exists, func, insert, literal, select, text, union, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError

from ..errors import BadRequest, DatabaseUnavailable, NotFound
from ..models import ChunkRow, Chunk, DocMeta, Document, Filters, Passage
from .accounts import AccountRows
from .analytics import AnalyticsRows
from .audit import AuditRows
from .database import Database, now
from .follows import FollowRows
from .filters import conditions, tag_values
from . import keyword
from .jobs import JobRows
from .migrate import upgrade
from .questions import QuestionRows
from .schema import chunks, doc_bands, documents, embeddings
from .sqlite_migrations import EDITABLE_FIELDS, migrate
from .themes import ThemeRows

EDITABLE = EDITABLE_FIELDS
SORTABLE = ("id", "title", "doc_type", "site", "published", "visibility", "status", "added_at", "updated_at")
DOC_FIELDS = ("id", "source", "sha256", "title", "doc_type", "site", "partnership", "published", "tags",
              "visibility", "status", "added_at", "updated_at", "original_name", "mime", "stored_path",
              "source_publication", "original_title", "dup_of", "edited", "source_sha", "warnings")
CHUNK_COUNT = (select(func.count()).where(chunks.c.doc_id == documents.c.id)
               .correlate(documents).scalar_subquery().label("chunk_count"))
ROW_COLUMNS = (chunks.c.id, chunks.c.doc_id, chunks.c.ordinal, chunks.c.text, chunks.c.heading, chunks.c.page,
               chunks.c.char_start, chunks.c.char_end, documents.c.title, documents.c.source, documents.c.site,
               documents.c.doc_type, documents.c.published, documents.c.tags, documents.c.dup_of,
               documents.c.visibility, documents.c.status)

# statements a search runs every time, built once. PostgreSQL reads a result's chunks, then their
# documents by id: joined, it planned a hash join over every document (10 ms at 100,000 chunks)
CHUNK_ROWS = select(*ROW_COLUMNS[:8]).where(chunks.c.id == func.any(bindparam("ids", type_=ARRAY(Integer))))
ROW_DOCUMENTS = select(documents.c.id, *ROW_COLUMNS[8:]).where(
    documents.c.id == func.any(bindparam("ids", type_=ARRAY(Integer))))
CHUNK_ROWS_SQLITE = (
    "SELECT c.id, c.doc_id, c.ordinal, c.text, c.heading, c.page, c.char_start, c.char_end, d.title, d.source, "
    "d.site, d.doc_type, d.published, d.tags, d.dup_of, d.visibility, d.status "
    "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})")


class EmbeddingSource(NamedTuple):
    title: str
    original_name: str | None
    source: str
    heading: str
    text: str


class Store:
    def __init__(self, where: Path | str, replica_url: str | None = None):
        """Open (and bring up to date) the database at `where`: an SQLite file's path or a
        `postgresql://` URL, with an optional streaming replica's URL to read from."""
        self.db = Database.open(where, replica_url)
        self.path = Path(where) if self.db.dialect == "sqlite" else None
        if self.db.dialect == "sqlite":
            self._migrate()
        try:
            upgrade(self.db)
        except DatabaseUnavailable:
            self.db.close()
            raise
        except OperationalError as exc:
            if self.db.dialect == "sqlite":
                raise
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            self.db.close()
            raise DatabaseUnavailable(f"cannot reach the database at {self.db.where}: {reason}") from None
        self.accounts = AccountRows(self.db)
        self.audit = AuditRows(self.db)
        self.analytics = AnalyticsRows(self.db)
        self.jobs = JobRows(self.db)
        self.themes = ThemeRows(self.db)
        self.follows = FollowRows(self.db)
        self.questions = QuestionRows(self.db)

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
        return self.find_many([source]).get(source)

    def find_many(self, sources: list[str]) -> dict[str, Document]:
        """The documents stored under any of these sources, by source (one query)."""
        if not sources:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(select(*_doc_columns(), CHUNK_COUNT).where(documents.c.source.in_(list(sources)))).all()
        return {row.source: _document(row) for row in rows}

    def find_source_or_bytes(self, source: str, sha256: str) -> tuple[Document | None, Document | None]:
        """In one query: the document stored under this source, and the first document holding
        these bytes (or whose file at its source had them when last read), as find() and
        find_by_sha(sha256, or_source=True) would answer."""
        with self.db.read() as conn:
            rows = conn.execute(select(*_doc_columns(), CHUNK_COUNT).where(
                (documents.c.source == source) | (documents.c.sha256 == sha256) | (documents.c.source_sha == sha256))
                .order_by(documents.c.id)).all()
        at_source = next((_document(r) for r in rows if r.source == source), None)
        twin = next((_document(r) for r in rows if sha256 in (r.sha256, r.source_sha)), None)
        return at_source, twin

    def find_by_sha(self, sha256: str, or_source: bool = False) -> Document | None:
        """The first document holding these bytes; with `or_source`, also one whose file at its
        source had them when last read (an upload has replaced its content since)."""
        match = documents.c.sha256 == sha256
        if or_source:
            match = match | (documents.c.source_sha == sha256)
        with self.db.read() as conn:
            row = conn.execute(select(*_doc_columns(), CHUNK_COUNT).where(match).order_by(documents.c.id).limit(1)).first()
        return _document(row) if row is not None else None

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
        """Documents sharing an LSH band with a signature, with their own signatures, by id."""
        return sorted({doc_id: sig for found in self.band_members(bands).values() for doc_id, sig in found}.items())

    def band_members(self, bands: list[str]) -> dict[str, list[tuple[int, bytes]]]:
        """For each of these LSH bands (a whole batch's), the stored documents holding it, with
        their signatures: one query per 5,000 bands instead of one per document."""
        wanted, out = list(dict.fromkeys(bands)), {}
        with self.db.read() as conn:
            for start in range(0, len(wanted), 5000):
                query = (select(doc_bands.c.band, documents.c.id, documents.c.signature)
                         .join_from(doc_bands, documents, documents.c.id == doc_bands.c.doc_id)
                         .where(doc_bands.c.band.in_(wanted[start:start + 5000])).order_by(documents.c.id))
                for band, doc_id, signature in conn.execute(query):
                    out.setdefault(band, []).append((doc_id, signature))
        return out

    def add_bands(self, conn: Connection, docs: list[tuple[int, list[str]]]) -> None:
        """The LSH bands of several documents, given as (doc id, bands), in one statement."""
        rows = [{"band": b, "doc_id": doc_id} for doc_id, bands in docs for b in dict.fromkeys(bands)]
        if not rows:
            return
        if self.dialect == "postgresql":  # two arrays in one statement: 8,000 rows took 1.4 s as a batch of rows
            conn.execute(text("INSERT INTO doc_bands (band, doc_id) SELECT * FROM unnest(CAST(:bands AS text[]), "
                              "CAST(:ids AS integer[])) ON CONFLICT DO NOTHING"),
                         {"bands": [r["band"] for r in rows], "ids": [r["doc_id"] for r in rows]})
        else:
            conn.execute(_insert_ignore(doc_bands, self.dialect), rows)

    def add_document(self, conn: Connection, source: str, sha256: str, meta: DocMeta, body: str, *,
                     mime: str | None = None, original_name: str | None = None,
                     stored_path: str | None = None, signature: bytes | None = None,
                     dup_of: int | None = None, dup_score: float | None = None,
                     source_sha: str | None = None, warnings: list[str] = ()) -> int:
        stamp = now()
        return int(conn.execute(insert(documents).values(
            source=source, sha256=sha256, **_meta_values(meta), added_at=stamp, updated_at=stamp,
            original_name=original_name, mime=mime, stored_path=stored_path, body=body, signature=signature,
            dup_of=dup_of, dup_score=dup_score, source_sha=source_sha,
            warnings=json.dumps(list(warnings)))).inserted_primary_key[0])

    def add_chunks(self, conn: Connection, docs: list[tuple[int, list[Chunk], list[str], str]]) -> list[list[int]]:
        """Store the chunks of several documents, given as (doc id, chunks, their text hashes,
        document title), with their keyword index: one statement for the rows, one keyword update
        for them all. Returns each document's new chunk ids."""
        rows = [{"doc_id": doc_id, "ordinal": c.ordinal, "text": c.text, "heading": c.heading, "page": c.page,
                 "char_start": c.char_start, "char_end": c.char_end, "tokens": c.tokens, "text_hash": h}
                for doc_id, new, hashes, _ in docs for c, h in zip(new, hashes)]
        if not rows:
            return [[] for _ in docs]
        made = conn.execute(insert(chunks).returning(chunks.c.id, sort_by_parameter_order=True), rows).scalars().all()
        out, words, at = [], [], 0
        for _, new, _, title in docs:
            ids = [int(i) for i in made[at:at + len(new)]]
            at += len(new)
            out.append(ids)
            words += [(i, c.text, title, c.heading) for i, c in zip(ids, new)]
        keyword.add(conn, words)
        return out

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
                         source_sha: str | None, warnings: list[str] = ()) -> np.ndarray:
        """New content for a stored document, in place: its id, status and added date stay.
        Returns the old chunk ids whose vectors must go."""
        ids = self.chunk_ids(conn, doc_id)
        keyword.remove(conn, ids)
        conn.execute(delete(chunks).where(chunks.c.doc_id == doc_id))
        conn.execute(delete(doc_bands).where(doc_bands.c.doc_id == doc_id))
        conn.execute(update(documents).where(documents.c.id == doc_id).values(
            sha256=sha256, **_meta_values(meta), updated_at=now(), original_name=original_name, mime=mime,
            stored_path=stored_path, body=body, signature=signature, dup_of=dup_of, dup_score=dup_score,
            edited=json.dumps(edited), source_sha=source_sha, warnings=json.dumps(list(warnings))))
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
        keyword.remove(conn, ids)
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
            keyword.retitle(conn, doc_id, changes["title"])
        if "visibility" in changes:
            keyword.relevel(conn, doc_id)

    def set_status(self, conn: Connection, doc_id: int, status: str) -> None:
        conn.execute(update(documents).where(documents.c.id == doc_id).values(status=status, updated_at=now()))
        keyword.relevel(conn, doc_id)

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
                       admitted: np.ndarray | None = None, approximate: bool = False) -> list[tuple[int, float]]:
        """BM25 over chunk text, title and headings (any of the query's words), filters applied
        inside; higher scores are better. `approximate` lets PostgreSQL stop early on a large
        collection (FTS5 is always exact). See keyword.py for each database's way."""
        if not words:
            return []
        if self.dialect == "postgresql":
            return keyword.search_postgres(self.db, words, filters, limit, approximate)
        return keyword.search_sqlite(self.db, words, filters, limit, admitted)

    def chunk_rows(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        ids = [int(i) for i in ids]
        if self.dialect == "sqlite":  # every search: sqlite3 itself (see Database.sqlite_read)
            with self.db.sqlite_read() as raw:
                rows = raw.execute(CHUNK_ROWS_SQLITE.format(marks=", ".join("?" * len(ids))), ids).fetchall()
        else:
            with self.db.read() as conn:
                found = conn.execute(CHUNK_ROWS, {"ids": ids}).all()
                docs = {r[0]: tuple(r[1:]) for r in conn.execute(ROW_DOCUMENTS, {"ids": sorted({r[1] for r in found})})}
            rows = [(*r, *docs[r[1]]) for r in found if r[1] in docs]
        return {r[0]: ChunkRow(*r[:13], json.loads(r[13] or "[]"), *r[14:]) for r in rows}

    def chunks_of(self, doc_id: int) -> list[Passage]:
        query = (select(chunks.c.id, chunks.c.ordinal, chunks.c.text, chunks.c.heading, chunks.c.page,
                        chunks.c.char_start, chunks.c.char_end, chunks.c.tokens)
                 .where(chunks.c.doc_id == doc_id).order_by(chunks.c.ordinal))
        with self.db.read() as conn:
            return [Passage(*r) for r in conn.execute(query)]

    def embedded_hashes(self, doc_id: int) -> list[str]:
        """The hash of each of a document's passages' embedding input, in order (as `chunks_of`)."""
        query = select(chunks.c.text_hash).where(chunks.c.doc_id == doc_id).order_by(chunks.c.ordinal)
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def duplicates_of(self, doc_id: int) -> list[int]:
        """Documents recorded as near-duplicates of this one, in either direction."""
        query = union(select(documents.c.id).where(documents.c.dup_of == doc_id),
                      select(documents.c.dup_of).where(documents.c.id == doc_id, documents.c.dup_of.is_not(None)))
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def counts(self, column: str, filters: Filters, unset: bool = False) -> list[tuple[str | None, int]]:
        """Documents per value of a column, most first; with `unset`, those without one too (as None)."""
        expr = {"site": documents.c.site, "doc_type": documents.c.doc_type,
                "year": func.substr(documents.c.published, 1, 4), "visibility": documents.c.visibility}[column]
        value, n = expr.label("v"), func.count().label("n")
        query = select(value, n).where(conditions(filters, dialect=self.dialect)).group_by(expr).order_by(n.desc(), expr)
        if not unset:
            query = query.where(expr.is_not(None))
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
    data["warnings"] = json.loads(data.get("warnings") or "[]")
    return Document(**data)


__all__ = ["Store", "SORTABLE", "EDITABLE", "OperationalError", "now"]
