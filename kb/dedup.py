"""Near-duplicate detection: MinHash signatures with LSH bands for documents, shingle overlap for hits.

Pure functions; the store keeps the signatures and band keys.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

import numpy as np

PERMUTATIONS = 64
BANDS = 16  # 16 bands of 4 rows: pairs above ~0.5 Jaccard almost always share a band
NEAR_DUPLICATE = 0.6
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_rng = np.random.default_rng(20200124)
_SALTS = _rng.integers(1, 2**63 - 1, size=PERMUTATIONS, dtype=np.uint64)
_MULTS = _rng.integers(1, 2**63 - 1, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)


def shingles(text: str, size: int = 5) -> set[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def signature(text: str) -> np.ndarray | None:
    """A MinHash signature of the text's word 5-shingles, or None for text too short to compare."""
    grams = shingles(text)
    if len(grams) < 8:
        return None
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams),
        dtype=np.uint64, count=len(grams))
    with np.errstate(over="ignore"):
        mixed = (hashes[None, :] ^ _SALTS[:, None]) * _MULTS[:, None]
    return mixed.min(axis=1)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.mean(a == b))


def band_keys(sig: np.ndarray) -> list[str]:
    rows = PERMUTATIONS // BANDS
    return [f"{b}:{hashlib.blake2b(sig[b * rows:(b + 1) * rows].tobytes(), digest_size=8).hexdigest()}"
            for b in range(BANDS)]


def word_triples(text: str) -> set[tuple[str, ...]]:
    """Word 3-shingles as tuples: the same sets as `shingles(text, 3)`, several times cheaper to
    build (no joined strings), for the comparisons folding makes at query time."""
    words = [w.lower() for w in _WORD.findall(text)]  # per word, as `shingles` does ("İ".lower() is 2 chars)
    if len(words) <= 3:
        return {tuple(words)} if words else set()
    return set(zip(words, words[1:], words[2:]))


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], dtype=np.uint64)  # odd 64-bit mixers


def triple_hashes(text: str) -> np.ndarray:
    """`word_triples(text)` as sorted distinct 64-bit hashes, for counting shared shingles: per-word
    hashes combined by numpy, about three times cheaper than building and hashing the tuples."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:  # a text of one or two words is one shingle, which no triple can equal
        return np.asarray([hash(tuple(words))], dtype=np.int64) if words else np.zeros(0, dtype=np.int64)
    h = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    mixed = h[:-2] * _MIX[0] + (h[1:-1] * _MIX[1] ^ h[2:])  # wraps modulo 2**64, as hashes should
    return np.unique(mixed.view(np.int64))


class TripleCache:
    """Each passage's word 3-shingles as a sorted array of 64-bit hashes, remembered by a digest
    of the passage's own text (content-addressed, so safe to share), least recently used dropped."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray:
        return self.get_many([text])[0]

    def get_many(self, texts: list[str]) -> list[np.ndarray]:
        """The shingle hashes of each text, computing only those not remembered (one lock each way)."""
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, hit in zip(keys, found):
                if hit is not None:
                    self._items.move_to_end(key)
        fresh = {key: triple_hashes(text) for key, text, hit in zip(keys, texts, found) if hit is None}
        if fresh:
            with self._lock:
                self._items.update(fresh)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return [hit if hit is not None else fresh[key] for key, hit in zip(keys, found)]


TRIPLES = TripleCache()


def shared_counts(grams: list[np.ndarray]) -> np.ndarray:
    """An n × n matrix: how many 3-shingles passages i and j share (the diagonal is each one's
    own count). Sparse products, so the cost follows the shingles, not n² comparisons."""
    from scipy.sparse import csr_matrix

    n = len(grams)
    if not n:
        return np.zeros((0, 0), dtype=np.int64)
    sizes = np.fromiter((len(g) for g in grams), dtype=np.int64, count=n)
    flat = np.concatenate(grams) if sizes.sum() else np.zeros(0, dtype=np.int64)
    _, columns = np.unique(flat, return_inverse=True)
    owners = np.repeat(np.arange(n), sizes)
    incidence = csr_matrix((np.ones(len(flat), dtype=np.int32), (owners, columns.ravel())),
                           shape=(n, int(columns.max()) + 1 if len(flat) else 0))
    return (incidence @ incidence.T).toarray().astype(np.int64)
