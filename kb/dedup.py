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
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # _WORD on lowered ASCII text, twice as fast
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
    """`word_triples(text)` as sorted distinct 64-bit hashes, for counting shared shingles."""
    return triple_hashes_many([text])[0]


def triple_hashes_many(texts: list[str]) -> list[np.ndarray]:
    """`triple_hashes` of many texts at once: per-word hashes combined by numpy over all the texts
    together (a few array operations per call, not per text), several times cheaper than building
    and hashing each text's tuples."""
    # ASCII text lowers the same whole as word by word (elsewhere "İ".lower() is two characters)
    words = [_ASCII_WORD.findall(t.lower()) if t.isascii() else [w.lower() for w in _WORD.findall(t)] for t in texts]
    counts = np.fromiter(map(len, words), dtype=np.int64, count=len(texts))
    h = np.fromiter((hash(w) for ws in words for w in ws), dtype=np.int64, count=int(counts.sum())).view(np.uint64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    owner = np.repeat(np.arange(len(texts)), counts)
    # a triple starting at i belongs to one text when i + 2 is still in it
    valid = np.flatnonzero(np.arange(len(h) - 2) + 2 < (starts + counts)[owner[:-2]]) if len(h) > 2 else \
        np.zeros(0, dtype=np.int64)
    mixed = (h[valid] * _MIX[0] + (h[valid + 1] * _MIX[1] ^ h[valid + 2])).view(np.int64)  # wraps mod 2**64
    owners = owner[valid]
    order = np.lexsort((mixed, owners))
    mixed, owners = mixed[order], owners[order]
    fresh = np.ones(len(mixed), dtype=bool)
    fresh[1:] = (mixed[1:] != mixed[:-1]) | (owners[1:] != owners[:-1])
    mixed, owners = mixed[fresh], owners[fresh]
    bounds = np.searchsorted(owners, np.arange(len(texts) + 1))
    out = [mixed[bounds[n]:bounds[n + 1]] for n in range(len(texts))]
    for n, ws in enumerate(words):
        if 0 < len(ws) < 3:  # a text of one or two words is one shingle, which no triple can equal
            out[n] = np.asarray([hash(tuple(ws))], dtype=np.int64)
    return out


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
        missing = [(key, text) for key, text, hit in zip(keys, texts, found) if hit is None]
        fresh = dict(zip((key for key, _ in missing), triple_hashes_many([text for _, text in missing])))
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
