"""The vector index: FAISS behind a narrow interface, ids equal to the store's chunk row ids.

Saved as `vectors.faiss` beside a versioned JSON manifest (never pickled), written atomically.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from .storage import private

FORMAT_VERSION = 1
INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"
# HNSW candidates explored per search. At 1,000,000 vectors shaped like real embeddings, 1024 found
# 0.93 of exact search's top 10 and 2048 found 0.96, at about 6 ms a search (docs/benchmarks.md).
EF_SEARCH = 2048


@dataclass
class IndexManifest:
    version: int
    model: str
    dim: int
    count: int
    kind: str
    generation: int


class VectorIndex:
    """Exact inner-product search (flat) or approximate (HNSW), with id selectors for filters."""

    def __init__(self, dim: int, kind: str = "flat", model: str = "", index=None):
        self.dim, self.kind, self.model = dim, kind, model
        self._index = index if index is not None else self._empty(dim, kind)
        self._lock = ReadWriteLock()
        self.version = 0  # bumped by every add and remove: what a cached view of the ids is checked against

    @staticmethod
    def _empty(dim: int, kind: str):
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(dim)
        return faiss.IndexIDMap2(inner)

    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock.reading():
            return self._ids()

    def _ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            with self._lock.writing():
                self.version += 1
                self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                         np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self._lock.writing():
            self.version += 1
            if self.kind == "flat":
                self._index.remove_ids(faiss.IDSelectorBatch(ids))
                return
            keep = np.setdiff1d(self._ids(), ids)  # HNSW cannot delete: rebuild from what stays
            vectors = self._vectors(keep)
            fresh = self._empty(self.dim, self.kind)
            if len(keep):
                fresh.add_with_ids(vectors, keep)
            self._index = fresh

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids; zeros for an id not held (yet): a reader's index can lag
        the store for a moment while another process writes."""
        with self._lock.reading():
            return self._vectors(ids)

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        if len(ids):
            try:  # one call into FAISS; it refuses the whole batch if any id is missing
                return self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))
            except RuntimeError:
                pass
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, i in enumerate(ids):
            try:
                out[row] = self._index.reconstruct(int(i))
            except RuntimeError:
                pass
        return out

    def scores(self, ids: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Inner products of these ids' vectors with one vector (0 for an id not held)."""
        return self.vectors(ids) @ np.asarray(vector, dtype=np.float32)

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Nearest ids by inner product, only among `allowed` ids when given."""
        if self.count() == 0 or k <= 0 or (allowed is not None and not len(allowed)):
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=max(EF_SEARCH, k))
                      if self.kind == "hnsw" else faiss.SearchParameters(sel=selector))
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(EF_SEARCH, k))
        with self._lock.reading(), one_thread():  # searches run side by side; an add or remove waits
            k = min(k, self.count())
            scores, ids = self._index.search(query, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, folder: Path, generation: int) -> None:
        folder = Path(folder)
        private.make_folder(folder)
        tmp = folder / (INDEX_FILE + ".tmp")
        with self._lock.reading():
            faiss.write_index(self._index, str(tmp))
        _fsync(tmp)
        os.replace(tmp, folder / INDEX_FILE)
        manifest = IndexManifest(FORMAT_VERSION, self.model, self.dim, self.count(), self.kind, generation)
        tmp = folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(manifest), indent=2))
        _fsync(tmp)
        os.replace(tmp, folder / MANIFEST_FILE)

    @staticmethod
    def manifest(folder: Path) -> IndexManifest | None:
        """The saved manifest alone (cheap), or None when missing, unreadable or of another format."""
        try:
            manifest = IndexManifest(**json.loads((Path(folder) / MANIFEST_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return manifest if manifest.version == FORMAT_VERSION else None

    @classmethod
    def load(cls, folder: Path) -> tuple["VectorIndex", IndexManifest] | None:
        """The saved index and its manifest, or None when missing, unreadable or of another format."""
        folder = Path(folder)
        manifest = cls.manifest(folder)
        if manifest is None:
            return None
        try:
            index = faiss.read_index(str(folder / INDEX_FILE))
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        if index.ntotal != manifest.count or index.d != manifest.dim:
            return None
        return cls(manifest.dim, manifest.kind, manifest.model, index), manifest


@contextmanager
def one_thread():
    """One OpenMP thread for the calling thread while it searches: a single query gains nothing
    from FAISS's threads, and on a busy machine they spin-wait on each other (exact search of
    20,000 vectors: 1.4 ms with one thread, 3.5 ms with two; docs/benchmarks.md). The setting is
    per thread, so index builds elsewhere keep every core."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class ReadWriteLock:
    """Many readers at once, or one writer: FAISS must not be searched while it is being changed."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def reading(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
