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


class TripleCache:
    """Each passage's word 3-shingles as a sorted array of 64-bit hashes, remembered by a digest
    of the passage's own text (content-addressed, so safe to share), least recently used dropped."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        grams = np.fromiter(map(hash, word_triples(text)), dtype=np.int64)
        grams.sort()
        with self._lock:
            self._items[key] = grams
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return grams


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
