"""The knowledge base: store, vector index and embedder kept in step.

Every write goes through here: one transaction per batch in SQLite, then the FAISS index is
updated and saved with the store's generation number, so a crash between the two is detected
and repaired on the next open.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import dedup
from .chunk import chunk_blocks, embed_text
from .embed import Embedder
from .errors import BadRequest, Busy, NotFound
from .index import VectorIndex
from .models import VISIBILITIES, Chunk, DocMeta, Document, Filters, ItemOutcome, NewDocument
from .settings import Settings
from .storage import Store, private
from .storage import vectors as stored_vectors
from .storage.files import DatabaseFiles, FolderFiles

Progress = Callable[[int], None]
WRITER_LOCK = 0x6B62_7772  # "kbwr": PostgreSQL's advisory lock for the collection's single writer
ENCODE_CALL = 1024  # texts per encoder call: sorted by length inside it, and progress reported after


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Prepared:
    """A document made ready to store: its body, chunks, their embedding texts and hashes, its
    near-duplicate signature, and (when embedded where it was prepared) vectors by text hash."""

    doc: NewDocument
    title: str  # the title embedded with every chunk
    body: str
    chunks: list[Chunk]
    texts: list[str]
    hashes: list[str]
    signature: np.ndarray | None
    bands: list[str]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def embedded_title(doc: NewDocument, old: Document | None) -> str:
    """The title embedded with a document's chunks: its metadata's (carried over from the stored
    version `old`), else the file's own; never a made-up file name."""
    meta = carried_over(old, doc.meta, doc.curated) if old else doc.meta
    return meta.title or doc.loaded.title or ""


def prepare(doc: NewDocument, title: str, count_tokens: Callable[[str], int], settings: Settings) -> Prepared:
    """Chunk a document and hash its embedding texts: pure, so it runs wherever the model's
    tokenizer is (here, or on a Dask worker)."""
    body, chunks = chunk_blocks(doc.loaded.blocks, count_tokens, settings.chunk_tokens, settings.chunk_overlap, title)
    return prepare_passages(doc, title, body, chunks)


def prepare_passages(doc: NewDocument, title: str, body: str, chunks: list[Chunk]) -> Prepared:
    """A document already cut into passages (a collection's own, carried by a `kb eval` record)
    made ready to store as they are: the same passages embed the same texts."""
    texts = [embed_text(title, c.heading, c.text) for c in chunks]
    sig = dedup.signature(body)
    return Prepared(doc, title, body, chunks, texts, [text_hash(t) for t in texts], sig,
                    dedup.band_keys(sig) if sig is not None else [])


def encode_texts(embedder: Embedder, texts: dict[str, str], progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Vectors for texts by their hash, ENCODE_CALL texts per encoder call (sorted by length inside it)."""
    keys, out = list(texts), {}
    for start in range(0, len(keys), ENCODE_CALL):
        part = keys[start:start + ENCODE_CALL]
        out.update(zip(part, embedder.encode([texts[h] for h in part])))
        if progress:
            progress(len(part))
    return out


class KnowledgeBase:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        private.make_folder(self.data_dir)
        self.files_dir = self.data_dir / "files"
        self.index_dir = self.data_dir / "index"
        for folder in (self.files_dir, self.data_dir / "uploads", self.index_dir):  # as an older kb made them
            private.restrict(folder, private.FOLDER_MODE)
        self.store = Store(settings.database_url or self.data_dir / "kb.sqlite3", settings.database_replica_url or None)
        self.files = DatabaseFiles(self.store.db) if self.store.keeps_vectors else FolderFiles(self.data_dir)
        self.embedder = embedder or Embedder.for_settings(settings)
        self._index: VectorIndex | None = None
        self._generation = -1
        self._index_lock = threading.RLock()
        self._writer = threading.RLock()
        self._write_depth = 0
        self._analyzed = 0  # PostgreSQL: chunks when the planner's statistics were last refreshed

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> "KnowledgeBase":
        return cls(settings, embedder)

    def close(self) -> None:
        self.store.close()

    # the vector index, loaded lazily and kept in step with the store ------------------------

    @property
    def index(self) -> VectorIndex:
        self.refresh()
        return self._index

    def refresh(self) -> None:
        """Load (or reload, after another process wrote) the index that matches the store.

        A saved index that lags the store is rebuilt from the stored embeddings, unless another
        writer holds the lock (it is between its commit and its index save): then the index in
        hand is kept, and the next call looks again.
        """
        if self.store.keeps_vectors:  # the database answers: nothing to load or keep in step
            if self._index is None:
                with self._index_lock:
                    if self._index is None and stored_vectors.other_model(self.store.db, self.settings.model):
                        try:  # vectors of another model: embed again with this one, as FAISS's path does
                            with self.writing(wait=0):
                                self.reindex()
                        except Busy:
                            pass
                    count = self.store.count("chunks")
                    self._index = self._index or stored_vectors.DatabaseVectors(
                        self.store.db, self.settings.model, self._index_kind(count), lambda: self.embedder.dim)
            return
        generation = self.store.generation()
        if self._index is not None and generation == self._generation:
            return
        with self._index_lock:
            if self._index is not None and generation == self._generation:
                return
            saved = VectorIndex.manifest(self.index_dir)
            loaded = None
            if saved and saved.generation == generation and saved.model == self.settings.model:
                loaded = VectorIndex.load(self.index_dir)
            if loaded and loaded[1].generation == generation:
                self._index, self._generation = loaded[0], generation
            elif self._try_lock_and_rebuild():
                pass
            elif self._index is None:  # first use while a writer is mid-way: build in memory
                self._index, self._generation = self._rebuilt_index(), generation

    def _try_lock_and_rebuild(self) -> bool:
        try:
            with self.writing(wait=0):
                self._index = self._rebuilt_index()
                self._generation = self.store.generation()
                self._index.save(self.index_dir, self._generation)
            return True
        except Busy:
            return False

    def _rebuilt_index(self, progress: Progress | None = None) -> VectorIndex:
        """A fresh index from the stored embeddings, embedding whatever the cache lacks."""
        ids, hashes, cached = self.store.chunk_vectors(self.settings.model)
        missing = [h for h in dict.fromkeys(hashes) if h not in cached]
        if missing:
            texts = self._texts_for_hashes(missing)
            for start in range(0, len(missing), 256):
                part = missing[start:start + 256]
                vectors = self.embedder.encode([texts[h] for h in part])
                fresh = dict(zip(part, vectors))
                with self.store.transaction(bump=None) as conn:
                    self.store.cache_vectors(conn, self.settings.model, fresh)
                cached.update(fresh)
                if progress:
                    progress(len(part))
        kind = self._index_kind(len(ids))
        dim = self.embedder.dim if not cached else len(next(iter(cached.values())))
        index = VectorIndex(dim, kind, self.settings.model)
        if len(ids):
            index.add(ids, np.vstack([cached[h] for h in hashes]))
        return index

    def _texts_for_hashes(self, hashes: list[str]) -> dict[str, str]:
        """The embedding input behind each hash, rebuilt as `add_batch` made it."""
        out = {}
        for h, row in self.store.embedding_sources(hashes).items():
            made_up = row.title == Path(row.original_name or row.source).stem
            out[h] = embed_text("" if made_up else row.title, row.heading, row.text)
        return out

    def _index_kind(self, count: int) -> str:
        kind = self.settings.index_kind
        if kind == "auto":
            threshold = self.settings.pg_hnsw_threshold if self.store.keeps_vectors else self.settings.hnsw_threshold
            return "hnsw" if count > threshold else "flat"
        return kind

    # writing ------------------------------------------------------------------------------

    @contextmanager
    def writing(self, wait: float = 30.0):
        """Hold the collection's single-writer lock; a second writer waits, then fails clearly."""
        acquired = self._writer.acquire(timeout=wait) if wait > 0 else self._writer.acquire(blocking=False)
        if not acquired:
            raise Busy("another writer in this process holds the collection; try again when it ends")
        try:
            if self._write_depth:  # already held by this thread: re-entrant
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            with (self.store.db.advisory_lock(WRITER_LOCK, wait) if self.store.keeps_vectors
                  else self._file_lock(wait)):
                self._write_depth = 1
                try:
                    yield
                finally:
                    self._write_depth = 0
        finally:
            self._writer.release()

    @contextmanager
    def _file_lock(self, wait: float):
        path = self.data_dir / ".write.lock"
        with open(path, "a+") as fh:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Busy("another process is writing to this collection; try again when it ends") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add_batch(self, docs: list[NewDocument | Prepared], progress: Progress | None = None) -> list[ItemOutcome]:
        """Chunk, embed and store a batch of documents (replacing any with the same source).

        Call inside `writing()`. One transaction for the batch, then the index is updated. A
        document may come `Prepared` elsewhere already (chunked and embedded on a Dask worker);
        one prepared with another title than it would embed now is chunked again here. Vectors
        come from the embedding cache first, then from those prepared with the documents; only
        the rest is encoded here.
        """
        index = self.index
        news = [item.doc if isinstance(item, Prepared) else item for item in docs]
        stored = self.store.find_many([doc.source for doc in news])
        prepared = []
        for doc, item in zip(news, docs):
            title = embedded_title(doc, stored.get(doc.source))  # the row is read again below
            if not isinstance(item, Prepared) or item.title != title:
                item = prepare(doc, title, self.embedder.count_tokens, self.settings)
            prepared.append(item)
        # the stored documents that share a band with any of the batch's (the writer lock is held:
        # nobody else adds one meanwhile), in one query
        members = self.store.band_members([band for p in prepared for band in p.bands])

        vectors = self.store.cached_vectors(self.settings.model, [h for p in prepared for h in p.hashes])
        fresh: dict[str, np.ndarray] = {}  # not cached yet: stored in the cache with the batch
        todo = {}
        for p in prepared:
            for t, h in zip(p.texts, p.hashes):
                if h in vectors:
                    continue
                if h in p.vectors:
                    fresh.setdefault(h, p.vectors[h])
                else:
                    todo.setdefault(h, t)
        fresh.update(encode_texts(self.embedder, {h: t for h, t in todo.items() if h not in fresh}, progress))
        vectors.update(fresh)

        outcomes, removed, added_ids, added_vecs, orphaned, old_hashes = [], [], [], [], [], []
        pending: list[tuple] = []  # (doc id, chunks, hashes, title): stored together at the end

        batch_bands: dict[int, tuple[set, np.ndarray]] = {}  # this batch's documents' LSH bands, stored at the end

        def store_chunks(conn) -> None:
            self.store.add_bands(conn, [(doc_id, sorted(bands)) for doc_id, (bands, _) in batch_bands.items()])
            batch_bands.clear()
            made = [i for ids in self.store.add_chunks(conn, pending) for i in ids]
            vecs = [vectors[h] for _, _, hashes, _ in pending for h in hashes]
            if self.store.keeps_vectors:  # in the same transaction as their chunks
                stored_vectors.add(conn, self.settings.model, made, vecs)
            added_ids.extend(made)
            added_vecs.extend(vecs)
            pending.clear()

        with self.store.transaction() as conn:
            self.store.cache_vectors(conn, self.settings.model, fresh)
            current = self.store.find_many([p.doc.source for p in prepared])  # a curator may have edited one meanwhile
            seen: set[str] = set()
            for p in prepared:
                doc, body, sig, bands, chunks, hashes = p.doc, p.body, p.signature, p.bands, p.chunks, p.hashes
                if doc.source in seen:  # the same source twice in a batch: the first is stored by now
                    store_chunks(conn)
                    current[doc.source] = self.store.find(doc.source)
                seen.add(doc.source)
                old = current.get(doc.source)
                meta = carried_over(old, doc.meta, doc.curated) if old else replace(doc.meta)
                meta.title = meta.title or doc.loaded.title or Path(doc.original_name or doc.source).stem
                dup_of, dup_score = self._near_duplicate(sig, bands, members, exclude=old.id if old else None,
                                                         also=batch_bands)
                if old is not None:
                    doc_id = old.id
                    old_hashes.extend(self.store.chunk_hashes(conn, doc_id))
                    removed.append(self.store.replace_document(
                        conn, doc_id, doc.sha256, meta, body, edited=sorted({*old.edited, *doc.curated}),
                        mime=doc.loaded.mime, original_name=doc.original_name, stored_path=doc.stored_path,
                        signature=sig.tobytes() if sig is not None else None, dup_of=dup_of, dup_score=dup_score,
                        source_sha=doc.source_sha or old.source_sha, warnings=doc.loaded.warnings))
                    if old.stored_path and old.stored_path != doc.stored_path:
                        orphaned.append(old.stored_path)
                else:
                    doc_id = self.store.add_document(
                        conn, doc.source, doc.sha256, meta, body, mime=doc.loaded.mime,
                        original_name=doc.original_name, stored_path=doc.stored_path,
                        signature=sig.tobytes() if sig is not None else None, dup_of=dup_of, dup_score=dup_score,
                        source_sha=doc.source_sha, warnings=doc.loaded.warnings)
                if bands or old is not None:  # a replaced document's old bands no longer count
                    batch_bands[doc_id] = (set(bands), sig)
                pending.append((doc_id, chunks, hashes, meta.title))
                outcomes.append(ItemOutcome(doc.label or doc.original_name or doc.source,
                                            "updated" if old else "added", doc_id=doc_id, chunks=len(chunks),
                                            reason=f"near-duplicate of document {dup_of}" if dup_of else ""))
            store_chunks(conn)
            self.store.forget_vectors(conn, old_hashes)  # those the new versions no longer hold
            if self.store.keeps_vectors and added_ids:
                stored_vectors.fix_dimension(conn, len(added_vecs[0]))
        if self.store.keeps_vectors:  # the vectors went in with the chunks, in one transaction
            self._keep_kind()
        else:
            with self._index_lock:
                gone = set()
                for ids in removed:
                    index.remove(ids)
                    gone.update(ids.tolist())
                kept = [n for n, i in enumerate(added_ids) if i not in gone]  # a source given twice: its first version
                if kept:
                    index.add(np.asarray([added_ids[n] for n in kept], dtype=np.int64),
                              np.vstack([added_vecs[n] for n in kept]))
                self._save_index()
        for path in orphaned:
            self._drop_file(path)
        return outcomes

    def _drop_file(self, stored_path: str | None) -> None:
        """Delete a kept original that no document refers to any more."""
        if stored_path and not self.store.file_in_use(stored_path):
            self.files.delete(stored_path)

    def near_duplicate_of(self, body: str, exclude: int | None = None) -> tuple[int | None, float | None]:
        """The stored document whose text this body nearly repeats, with the estimated similarity."""
        sig = dedup.signature(body)
        if sig is None:
            return None, None
        best, score = None, 0.0
        for doc_id, blob in self.store.near_duplicate_candidates(dedup.band_keys(sig)):
            similarity = dedup.similarity(sig, np.frombuffer(blob, dtype=np.uint64))
            if doc_id != exclude and similarity >= dedup.NEAR_DUPLICATE and similarity > score:
                best, score = doc_id, similarity
        return best, (round(score, 3) if best else None)

    def _near_duplicate(self, sig, bands, members: dict[str, list[tuple[int, bytes]]], exclude: int | None = None,
                        also: dict[int, tuple[set, np.ndarray]] | None = None) -> tuple[int | None, float | None]:
        """The stored document (found through `members`: store.band_members) or one of `also`
        (documents of this batch not stored yet, by id: their bands and signature) that this
        signature nearly repeats, with the similarity."""
        if sig is None:
            return None, None
        also = also or {}
        # a document replaced earlier in this batch is compared by its new text (in `also`), not
        # by the bands it had when `members` was read
        found = {doc_id: np.frombuffer(blob, dtype=np.uint64)
                 for band in bands for doc_id, blob in members.get(band, ()) if doc_id not in also}
        wanted = set(bands)
        found.update((doc_id, other) for doc_id, (their, other) in also.items() if their & wanted)
        best, best_score = None, 0.0
        for doc_id, other in sorted(found.items()):
            score = dedup.similarity(sig, other)
            if doc_id != exclude and score >= dedup.NEAR_DUPLICATE and score > best_score:
                best, best_score = doc_id, score
        return best, (round(best_score, 3) if best else None)

    def _keep_kind(self) -> None:
        """PostgreSQL: an HNSW index once the collection is large enough (the auto kind), none below;
        and fresh planner statistics whenever the collection has grown by a fifth. Without them a
        newly filled collection was planned as nearly empty: a dense search at 5,000 passages took
        41 ms of server time in nested loops, 18 ms in hash joins with fresh statistics."""
        count = self.store.count("chunks")
        kind = self._index_kind(count)
        with self.store.transaction(bump=None) as conn:
            stored_vectors.ensure_kind(conn, kind)
        if count > 1.2 * self._analyzed + 100:
            self.store.analyze()
            self._analyzed = count
        with self._index_lock:  # a new view with this kind, swapped in whole (readers never see None)
            self._index = stored_vectors.DatabaseVectors(self.store.db, self.settings.model, kind,
                                                         lambda: self.embedder.dim)

    def _save_index(self) -> None:
        self._generation = self.store.generation()
        self._index.save(self.index_dir, self._generation)

    def remove(self, doc_id: int) -> Document:
        """Delete a document: its chunks, its vectors and its stored file."""
        with self.writing():
            doc = self.store.get(doc_id)
            index = self.index
            with self.store.transaction() as conn:
                ids = self.store.delete_document(conn, doc_id)  # PostgreSQL drops its vectors with the chunks
            if not self.store.keeps_vectors:
                with self._index_lock:
                    index.remove(ids)
                    self._save_index()
        self._drop_file(doc.stored_path)
        return doc

    def resolve(self, ref: str) -> Document:
        """A document by id or by source."""
        if ref.isdigit():
            return self.store.get(int(ref))
        doc = self.store.find(ref) or self.store.find(str(Path(ref).resolve()))
        if doc is None:
            raise NotFound(f"no document with id or source {ref!r}")
        return doc

    def update(self, doc_id: int, changes: dict, by_curator: bool = True) -> Document:
        """Edit metadata; search sees it at once without re-embedding. A curator's edits (the
        default) are remembered, and a later ingest of the same file leaves those fields alone."""
        if "visibility" in changes and changes["visibility"] not in VISIBILITIES:
            raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
        self.store.get(doc_id)
        with self.store.transaction(bump="revision") as conn:
            self.store.update_meta(conn, doc_id, changes, by_curator)
        return self.store.get(doc_id)

    def move(self, doc_id: int, source: str) -> Document:
        """Point a document at the new place of its file (same bytes, moved or renamed)."""
        with self.store.transaction(bump="revision") as conn:
            self.store.move(conn, doc_id, source)
        return self.store.get(doc_id)

    def set_status(self, doc_id: int, status: str) -> Document:
        """Retire (hidden from search, kept) or restore a document."""
        if status not in ("active", "retired"):
            raise BadRequest("status must be active or retired")
        self.store.get(doc_id)
        with self.store.transaction(bump="revision") as conn:
            self.store.set_status(conn, doc_id, status)
        return self.store.get(doc_id)

    def reindex(self, progress: Progress | None = None) -> int:
        """Rebuild the vector index from stored embeddings (embedding what a new model lacks)."""
        with self.writing():
            if self.store.keeps_vectors:
                rebuilt = self._rebuilt_index(progress)
                ids = rebuilt.ids()
                with self.store.transaction() as conn:
                    stored_vectors.replace_all(conn, self.settings.model, ids, rebuilt.vectors(ids), rebuilt.dim)
                self._keep_kind()
                return len(ids)
            with self._index_lock:
                self._index = self._rebuilt_index(progress)
                self._save_index()
                return self._index.count()

    # reading -------------------------------------------------------------------------------

    def stats(self, visibility: tuple[str, ...] = VISIBILITIES) -> dict:
        """Counts for `kb stats` and /api/stats: documents by type, site and year, with those that
        have none (no type, no site, no date) under "without", each from one query."""
        filters = Filters(visibility=visibility)
        index = self.index
        by = {name: dict(self.store.counts(column, filters, unset=True))
              for name, column in (("type", "doc_type"), ("site", "site"), ("year", "year"))}
        without = {name: counts.pop(None, 0) for name, counts in by.items()}
        return {
            "documents": self.store.count_documents(filters),
            "chunks": len(self.store.allowed_chunk_ids(filters)),
            "by_type": by["type"],
            "by_site": by["site"],
            "by_year": by["year"],
            "without": without,
            "index": {"kind": index.kind, "vectors": index.count(), "dim": index.dim},
            "model": self.settings.model,
        }

    def check(self) -> dict:
        """Consistency report: do the index ids equal the store's chunk ids?"""
        index_ids = np.sort(self.index.ids())
        store_ids = self.store.chunk_ids()
        return {"in_step": bool(np.array_equal(index_ids, store_ids)),
                "index": int(len(index_ids)), "store": int(len(store_ids))}


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def carried_over(old: Document, meta: DocMeta, curated: tuple[str, ...] = ()) -> DocMeta:
    """Metadata for new content of a stored document. A field a curator sets with this version
    takes the new value; a field a curator edited before keeps the curator's value; any other
    field takes the new value where this ingest has one, else keeps the stored one."""
    out = DocMeta(**asdict(meta))
    for key in asdict(meta):
        if key in curated:
            continue
        if key in old.edited or getattr(meta, key) in (None, "", []):
            setattr(out, key, getattr(old, key))
    return out
