"""Large collections without the model: generated vectors shaped like real ones, real-ish text.

Embedding 100,000 chunks takes most of an hour here, so the larger scales are written straight
through kb's own Store and VectorIndex, from the real embeddings of the ingested MS MARCO
passages (see `Generator`). Vectors then sit where real embeddings sit (uniform random vectors
are the approximate index's worst case and say nothing about real use), and the keyword index
holds real words in real proportions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kb.collection import KnowledgeBase
from kb.index import VectorIndex
from kb.models import Chunk, DocMeta
from kb.settings import Settings

from .common import Clock

CHUNKS_PER_DOC = 10
SLICE = 50_000  # chunks per transaction and per vector block
SITES = ("Coventry", "Croydon", "Gloucestershire", "Leeds", "Newham", "Plymouth")
TYPES = ("learning-report", "guidance", "profile", "news")


@dataclass
class Built:
    data_dir: Path
    chunks: int
    kind: str
    store_seconds: float
    index_seconds: float
    ids: np.ndarray  # chunk ids, in the order of the rows below
    vectors: np.ndarray  # the same vectors, for exact search and txtai
    texts: list[str]


class Generator:
    """Chunks shaped like real ones: a real passage embedding moved by noise that follows the real
    embeddings' own covariance (so it stays where real embeddings lie), scaled so a generated
    vector keeps cosine `similarity` (median) with the embedding it came from. Its text is the
    matching share of that passage's words and the rest of another passage's, shuffled."""

    def __init__(self, base: np.ndarray, texts: list[str], seed: int = 11, similarity: float = 0.85):
        self.base, self.texts, self.seed = base.astype(np.float32), texts, seed
        centred = self.base - self.base.mean(axis=0)
        covariance = centred.T @ centred / max(len(base) - 1, 1)
        self.shape = np.linalg.cholesky(covariance + 1e-6 * np.eye(base.shape[1])).astype(np.float32)
        spread = float(np.sqrt(np.trace(covariance)))  # expected length of one unscaled noise draw
        self.scale = float(np.sqrt(1 / similarity ** 2 - 1) / spread)

    def chunks(self, start: int, count: int) -> tuple[np.ndarray, list[str]]:
        """Vectors and texts for chunks start..start+count: the same for the same seed."""
        rng = np.random.default_rng([self.seed, start])
        i = rng.integers(0, len(self.base), count)
        j = rng.integers(0, len(self.base), count)
        share = rng.uniform(0.55, 0.9, count)
        noise = rng.standard_normal((count, self.base.shape[1]), dtype=np.float32) @ self.shape.T
        vectors = self.base[i] + self.scale * noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        out = []
        for a, b, s, seed in zip(i, j, share, rng.integers(0, 2 ** 32, count)):
            first, second = self.texts[a].split(), self.texts[b].split()
            words = first[:max(1, round(len(first) * s))] + second[round(len(second) * s):]
            np.random.default_rng(seed).shuffle(words)  # real words, but no long spans shared with
            out.append(" ".join(words))  # the other chunks of the same passages (no false folding)
        return vectors.astype(np.float32), out


def build(data_dir: Path, chunks: int, base: np.ndarray, base_texts: list[str], settings: Settings,
          seed: int = 11) -> Built:
    """A kb collection of `chunks` generated chunks (10 per document), index kind as kb picks it."""
    settings = replace(settings, data_dir=data_dir)
    kb = KnowledgeBase.open(settings)
    store, model = kb.store, settings.model
    all_vectors = np.empty((chunks, base.shape[1]), dtype=np.float32)
    all_texts: list[str] = []
    all_ids = np.empty(chunks, dtype=np.int64)
    kind = kb._index_kind(chunks)  # the rule kb itself applies when it builds an index
    generator = Generator(base, base_texts, seed)
    index = VectorIndex(base.shape[1], kind, model)
    store_seconds = index_seconds = 0.0
    for start in range(0, chunks, SLICE):
        count = min(SLICE, chunks - start)
        vectors, texts = generator.chunks(start, count)
        all_vectors[start:start + count] = vectors
        all_texts += texts
        with Clock() as clock:
            ids = _write(store, model, start, vectors, texts)
        store_seconds += clock.seconds
        all_ids[start:start + count] = ids
        with Clock() as clock:
            index.add(ids, vectors)
        index_seconds += clock.seconds
    with Clock() as clock:
        index.save(kb.index_dir, store.generation())
        with store.db.read() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store_seconds += clock.seconds
    kb.close()
    return Built(data_dir, chunks, kind, store_seconds, index_seconds, all_ids, all_vectors, all_texts)


def _write(store, model: str, start: int, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    """One transaction: documents, chunks (with their keyword index) and cached embeddings."""
    pending = []
    cache = {}
    with store.transaction() as conn:
        for first in range(0, len(texts), CHUNKS_PER_DOC):
            number = (start + first) // CHUNKS_PER_DOC
            part = texts[first:first + CHUNKS_PER_DOC]
            body = "\n\n".join(part)
            meta = DocMeta(title=str(number), doc_type=TYPES[number % len(TYPES)],
                           site=SITES[number % len(SITES)], published=f"{2019 + number % 6}-0{1 + number % 9}-15",
                           visibility="public")
            doc_id = store.add_document(conn, f"synthetic:{number}", _sha(body), meta, body, mime="text/plain",
                                        original_name=f"{number}.txt")
            chunk_list, hashes, pos = [], [], 0
            for ordinal, text in enumerate(part):
                chunk_list.append(Chunk(ordinal, text, "", None, pos, pos + len(text), len(text.split()) * 4 // 3))
                hashes.append(_sha(text))
                pos += len(text) + 2
            pending.append((doc_id, chunk_list, hashes, meta.title))
            for h, row in zip(hashes, range(first, first + len(part))):
                cache[h] = vectors[row]
        ids = [i for made in store.add_chunks(conn, pending) for i in made]
        store.cache_vectors(conn, model, cache)
    return np.asarray(ids, dtype=np.int64)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
