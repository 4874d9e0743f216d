"""SQLite store: documents, chunks, the embedding cache and the FTS5 keyword index.

A narrow interface (add, remove, get, search, count) so that another backend can take its place.
Each thread gets its own connection; the database runs in WAL mode so readers never wait for a
writer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import BadRequest, NotFound
from .migrations import EDITABLE_FIELDS, migrate
from .models import Chunk, DocMeta, Document, Filters

DOC_COLUMNS = (
    "id, source, sha256, title, doc_type, site, partnership, published, tags, visibility, status, "
    "added_at, updated_at, original_name, mime, stored_path, source_publication, original_title, dup_of, edited, source_sha"
)
EDITABLE = EDITABLE_FIELDS
SORTABLE = ("id", "title", "doc_type", "site", "published", "visibility", "status", "added_at", "updated_at")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


BM25 = "bm25(chunks_fts, 1.0, 0.6, 0.8)"  # column weights: text, title, headings
MMAP_BYTES = 1 << 30  # at most this much of the database file is mapped (SQLite maps what the file holds)
KEYWORD_HEAD = 4  # keyword search ranks limit × this many matches before filtering them


def filter_sql(filters: Filters, alias: str = "d") -> tuple[str, list]:
    """SQL conditions (on the documents table) and parameters for a set of filters. Pure."""
    where = [f"{alias}.status = 'active'"]
    params: list = []

    def any_of(column: str, values: Iterable) -> None:
        values = list(values)
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
        params.extend(values)

    any_of(f"{alias}.visibility", filters.visibility or ("",))
    if filters.site:
        any_of(f"{alias}.site", filters.site)
    if filters.doc_type:
        any_of(f"{alias}.doc_type", filters.doc_type)
    if filters.year:
        any_of(f"substr({alias}.published, 1, 4)", [f"{int(y):04d}" for y in filters.year])
    if filters.tag:
        marks = ", ".join("?" * len(filters.tag))
        where.append(f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value IN ({marks}))")
        params.extend(filters.tag)
    if filters.date_from:
        where.append(f"{alias}.published >= ?")
        params.append(filters.date_from)
    if filters.date_to:
        where.append(f"{alias}.published <= ?")
        params.append(filters.date_to + "\uffff")
    if filters.doc_ids is not None:
        any_of(f"{alias}.id", filters.doc_ids or [-1])
    return " AND ".join(where), params


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._migrate()

    def _migrate(self) -> None:
        """Bring the schema up to date. Two processes opening a new store at once both try; the
        one that waited finds the tables made ("already exists"), rolls back and looks again."""
        for attempt in range(3):
            try:
                migrate(self.conn)
                return
            except sqlite3.OperationalError:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if attempt == 2:
                    raise

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            _wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            # reads through a memory map: a search's rows and FTS5 pages without a read() call each
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self, bump: str | None = "generation") -> Iterator[sqlite3.Connection]:
        """One write transaction. Chunks or vectors changing bump the `generation` (a running server
        then reloads the vector index); metadata changes bump the `revision` (cached filters are
        dropped); bookkeeping (accounts, audit, jobs) bumps nothing."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            if bump:
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (bump,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def generation(self) -> int:
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def revision(self) -> tuple[int, int]:
        """(generation, metadata revision): changes whenever search results could change."""
        rows = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'revision')"))
        return int(rows["generation"]), int(rows.get("revision", 0))

    # documents -----------------------------------------------------------------------------

    def get(self, doc_id: int, visibility: tuple[str, ...] | None = None) -> Document:
        row = self.conn.execute(
            f"SELECT {DOC_COLUMNS}, (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) AS chunk_count "
            "FROM documents d WHERE id = ?", (doc_id,)).fetchone()
        if row is None or (visibility is not None and row["visibility"] not in visibility):
            raise NotFound(f"no document {doc_id}")
        return _document(row)

    def find(self, source: str) -> Document | None:
        row = self.conn.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        return self.get(row["id"]) if row else None

    def find_by_sha(self, sha256: str, or_source: bool = False) -> Document | None:
        """The first document holding these bytes; with `or_source`, also one whose file at its
        source had them when last read (an upload has replaced its content since)."""
        where, params = ("sha256 = ? OR source_sha = ?", (sha256, sha256)) if or_source else ("sha256 = ?", (sha256,))
        row = self.conn.execute(f"SELECT id FROM documents WHERE {where} ORDER BY id LIMIT 1", params).fetchone()
        return self.get(row["id"]) if row else None

    def documents(self, filters: Filters | None = None, include_retired: bool = False,
                  sort: str = "id", descending: bool = False, limit: int = 10_000,
                  offset: int = 0) -> list[Document]:
        if sort not in SORTABLE:
            raise BadRequest(f"cannot sort by {sort!r}; use one of {', '.join(SORTABLE)}")
        where, params = filter_sql(filters or Filters())
        if include_retired:
            where = where.replace("d.status = 'active'", "1")
        rows = self.conn.execute(
            f"SELECT {DOC_COLUMNS}, (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) AS chunk_count "
            f"FROM documents d WHERE {where} ORDER BY {sort} {'DESC' if descending else 'ASC'}, id "
            "LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
        return [_document(r) for r in rows]

    def body(self, doc_id: int) -> str:
        row = self.conn.execute("SELECT body FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFound(f"no document {doc_id}")
        return row["body"]

    def near_duplicate_candidates(self, bands: list[str]) -> list[tuple[int, bytes]]:
        """Documents sharing an LSH band with a signature, with their own signatures."""
        if not bands:
            return []
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT DISTINCT d.id, d.signature FROM doc_bands b JOIN documents d ON d.id = b.doc_id "
            f"WHERE b.band IN ({', '.join('?' * len(bands))}) ORDER BY d.id", bands)]

    def add_bands(self, conn, doc_id: int, bands: list[str]) -> None:
        conn.executemany("INSERT OR IGNORE INTO doc_bands (band, doc_id) VALUES (?, ?)",
                         [(b, doc_id) for b in bands])

    def add_document(self, conn, source: str, sha256: str, meta: DocMeta, body: str, *,
                     mime: str | None = None, original_name: str | None = None,
                     stored_path: str | None = None, signature: bytes | None = None,
                     dup_of: int | None = None, dup_score: float | None = None,
                     source_sha: str | None = None) -> int:
        stamp = now()
        cur = conn.execute(
            "INSERT INTO documents (source, sha256, title, doc_type, site, partnership, published, tags, "
            "visibility, added_at, updated_at, original_name, mime, stored_path, source_publication, "
            "original_title, body, signature, dup_of, dup_score, source_sha) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (source, sha256, meta.title or "", meta.doc_type, meta.site, meta.partnership, meta.published,
             json.dumps(meta.tags), meta.visibility or "public", stamp, stamp, original_name, mime,
             stored_path, meta.source_publication, meta.original_title, body, signature, dup_of, dup_score,
             source_sha))
        return int(cur.lastrowid)

    def add_chunks(self, conn, doc_id: int, chunks: list[Chunk], hashes: list[str], title: str) -> list[int]:
        ids = []
        for chunk, text_hash in zip(chunks, hashes):
            cur = conn.execute(
                "INSERT INTO chunks (doc_id, ordinal, text, heading, page, char_start, char_end, tokens, "
                "text_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, chunk.ordinal, chunk.text, chunk.heading, chunk.page, chunk.char_start,
                 chunk.char_end, chunk.tokens, text_hash))
            ids.append(int(cur.lastrowid))
            conn.execute("INSERT INTO chunks_fts (rowid, text, title, heading) VALUES (?, ?, ?, ?)",
                         (cur.lastrowid, chunk.text, title, chunk.heading))
        return ids

    def chunk_ids(self, conn=None, doc_id: int | None = None) -> np.ndarray:
        conn = conn or self.conn
        if doc_id is None:
            rows = conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        else:
            rows = conn.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY id", (doc_id,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def replace_document(self, conn, doc_id: int, sha256: str, meta: DocMeta, body: str, *,
                         edited: list[str], mime: str | None, original_name: str | None, stored_path: str | None,
                         signature: bytes | None, dup_of: int | None, dup_score: float | None,
                         source_sha: str | None) -> np.ndarray:
        """New content for a stored document, in place: its id, status and added date stay.
        Returns the old chunk ids whose vectors must go."""
        ids = self.chunk_ids(conn, doc_id)
        conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(int(i),) for i in ids])
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM doc_bands WHERE doc_id = ?", (doc_id,))
        conn.execute(
            "UPDATE documents SET sha256 = ?, title = ?, doc_type = ?, site = ?, partnership = ?, published = ?, "
            "tags = ?, visibility = ?, updated_at = ?, original_name = ?, mime = ?, stored_path = ?, "
            "source_publication = ?, original_title = ?, body = ?, signature = ?, dup_of = ?, dup_score = ?, "
            "edited = ?, source_sha = ? WHERE id = ?",
            (sha256, meta.title or "", meta.doc_type, meta.site, meta.partnership, meta.published,
             json.dumps(meta.tags), meta.visibility or "public", now(), original_name, mime, stored_path,
             meta.source_publication, meta.original_title, body, signature, dup_of, dup_score,
             json.dumps(edited), source_sha, doc_id))
        return ids

    def move(self, conn, doc_id: int, source: str) -> None:
        """A document's file moved: its source and file name follow."""
        conn.execute("UPDATE documents SET source = ?, original_name = ?, updated_at = ? WHERE id = ?",
                     (source, os.path.basename(source), now(), doc_id))

    def delete_document(self, conn, doc_id: int) -> np.ndarray:
        """Delete a document with its chunks and the cached vectors no other passage shares;
        returns the chunk ids whose vectors must leave the index too."""
        ids = self.chunk_ids(conn, doc_id)
        hashes = self.chunk_hashes(conn, doc_id)
        conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(int(i),) for i in ids])
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.forget_vectors(conn, hashes)
        conn.execute("UPDATE documents SET dup_of = NULL WHERE dup_of = ?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return ids

    def update_meta(self, conn, doc_id: int, changes: dict, by_curator: bool = False) -> None:
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
            row = conn.execute("SELECT edited FROM documents WHERE id = ?", (doc_id,)).fetchone()
            edited = sorted({*json.loads(row[0] if row else "[]"), *changes})
            changes = {**changes, "edited": json.dumps(edited)}
        assignments = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(f"UPDATE documents SET {assignments}, updated_at = ? WHERE id = ?",
                     [*changes.values(), now(), doc_id])
        if "title" in changes:
            conn.execute("UPDATE chunks_fts SET title = ? WHERE rowid IN "
                         "(SELECT id FROM chunks WHERE doc_id = ?)", (changes["title"], doc_id))

    def set_status(self, conn, doc_id: int, status: str) -> None:
        conn.execute("UPDATE documents SET status = ?, updated_at = ? WHERE id = ?", (status, now(), doc_id))

    # embeddings ------------------------------------------------------------------------------

    def cached_vectors(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            part = unique[i:i + 500]
            rows = self.conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN "
                f"({', '.join('?' * len(part))})", [model, *part])
            for text_hash, blob in rows:
                out[text_hash] = np.frombuffer(blob, dtype=np.float32)
        return out

    def chunk_hashes(self, conn, doc_id: int) -> list[str]:
        return [r[0] for r in conn.execute("SELECT DISTINCT text_hash FROM chunks WHERE doc_id = ?", (doc_id,))]

    def forget_vectors(self, conn, hashes: list[str]) -> None:
        """Drop cached vectors (every model's) of texts that no stored passage holds any more."""
        conn.executemany("DELETE FROM embeddings WHERE text_hash = ? AND NOT EXISTS "
                         "(SELECT 1 FROM chunks WHERE text_hash = ?)", [(h, h) for h in hashes])

    def cache_vectors(self, conn, model: str, vectors: dict[str, np.ndarray]) -> None:
        conn.executemany("INSERT OR IGNORE INTO embeddings (model, text_hash, vector) VALUES (?, ?, ?)",
                         [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()])

    def chunk_vectors(self, model: str) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
        """Every chunk id with its text hash, and the cached vectors found for this model."""
        rows = self.conn.execute("SELECT id, text_hash FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        hashes = [r[1] for r in rows]
        return ids, hashes, self.cached_vectors(model, hashes)

    # search ----------------------------------------------------------------------------------

    def allowed_chunk_ids(self, filters: Filters) -> np.ndarray:
        where, params = filter_sql(filters)
        rows = self.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def keyword_search(self, match: str, filters: Filters, limit: int,
                       admitted: np.ndarray | None = None) -> list[tuple[int, float]]:
        """BM25 over chunk text, title and headings; higher scores are better.

        FTS5 ranks its own top few hundred first and only those are checked against the filters
        (against `admitted`, the sorted chunk ids the filters admit, when the caller has them):
        ranking every match joined to its document cost three times as much. When too few of them
        pass (a narrow filter), the full filtered query runs; either way the result is the same.
        """
        where, params = filter_sql(filters)
        wanted = KEYWORD_HEAD * limit
        if wanted <= 8000:  # well inside SQLite's limit on bound parameters
            head = self.conn.execute(
                f"SELECT rowid, {BM25} AS rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
                [match, wanted]).fetchall()
            ids = np.fromiter((r[0] for r in head), dtype=np.int64, count=len(head))
            if admitted is not None:
                at = np.searchsorted(admitted, ids).clip(max=max(len(admitted) - 1, 0))
                passed = set(ids[admitted[at] == ids].tolist()) if len(admitted) else set()
            elif len(ids):
                passed = {r[0] for r in self.conn.execute(
                    f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
                    f"WHERE c.id IN ({', '.join('?' * len(ids))}) AND {where}", [*ids.tolist(), *params])}
            else:
                passed = set()
            kept = [(int(i), -float(rank)) for i, rank in head if i in passed][:limit]
            if len(kept) == limit or len(head) < wanted:
                return kept
        rows = self.conn.execute(
            f"SELECT f.rowid, {BM25} AS rank FROM chunks_fts f "
            "JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id "
            f"WHERE chunks_fts MATCH ? AND {where} ORDER BY rank LIMIT ?", [match, *params, limit]).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def chunk_rows(self, ids: list[int]) -> dict[int, sqlite3.Row]:
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT c.id, c.doc_id, c.ordinal, c.text, c.heading, c.page, c.char_start, c.char_end, "
            "d.title, d.source, d.site, d.doc_type, d.published, d.tags, d.dup_of, d.visibility, d.status "
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({', '.join('?' * len(ids))})",
            [int(i) for i in ids]).fetchall()
        return {r["id"]: r for r in rows}

    def chunks_of(self, doc_id: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT id, ordinal, text, heading, page, char_start, char_end, tokens FROM chunks "
            "WHERE doc_id = ? ORDER BY ordinal", (doc_id,)).fetchall()

    def duplicates_of(self, doc_id: int) -> list[int]:
        """Documents recorded as near-duplicates of this one, in either direction."""
        rows = self.conn.execute(
            "SELECT id FROM documents WHERE dup_of = ? UNION SELECT dup_of FROM documents "
            "WHERE id = ? AND dup_of IS NOT NULL", (doc_id, doc_id)).fetchall()
        return [r[0] for r in rows]

    def counts(self, column: str, filters: Filters) -> list[tuple[str, int]]:
        expr = {"site": "d.site", "doc_type": "d.doc_type", "year": "substr(d.published, 1, 4)",
                "visibility": "d.visibility"}[column]
        where, params = filter_sql(filters)
        return [(r[0], r[1]) for r in self.conn.execute(
            f"SELECT {expr} AS v, count(*) FROM documents d WHERE {where} AND v IS NOT NULL "
            "GROUP BY v ORDER BY count(*) DESC, v", params)]

    def tag_counts(self, filters: Filters) -> list[tuple[str, int]]:
        where, params = filter_sql(filters)
        return [(r[0], r[1]) for r in self.conn.execute(
            f"SELECT t.value, count(*) FROM documents d, json_each(d.tags) t WHERE {where} "
            "GROUP BY t.value ORDER BY count(*) DESC, t.value", params)]

    def is_visible(self, doc_id: int, visibility: tuple[str, ...]) -> bool:
        """Active and visible to a reader with this visibility."""
        return self.count_documents(Filters(doc_ids=[doc_id], visibility=visibility)) > 0

    def count_documents(self, filters: Filters) -> int:
        where, params = filter_sql(filters)
        return self.conn.execute(f"SELECT count(*) FROM documents d WHERE {where}", params).fetchone()[0]

    def count(self, table: str = "documents") -> int:
        if table not in ("documents", "chunks", "embeddings"):
            raise ValueError(table)
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. On a new file another process may be switching at the same moment, and
    SQLite then answers "locked" at once instead of waiting: try again for up to five seconds."""
    for attempt in range(100):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)


def _document(row: sqlite3.Row) -> Document:
    data = dict(row)
    data["tags"] = json.loads(data.get("tags") or "[]")
    data["edited"] = json.loads(data.get("edited") or "[]")
    return Document(**data)
