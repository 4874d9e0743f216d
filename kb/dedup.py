"""Near-duplicate detection: MinHash signatures with LSH bands for documents, shingle overlap for hits.

Pure functions; the store keeps the signatures and band keys.
"""

from __future__ import annotations

import hashlib
import re

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


def text_overlap(a: str, b: str) -> float:
    """Jaccard overlap of word 3-shingles: how far two passages say the same thing in the same words."""
    sa, sb = shingles(a, 3), shingles(b, 3)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)
