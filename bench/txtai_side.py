"""txtai on the same data and the same local model, for side-by-side figures.

At the larger scales the vectors are generated, not embedded: txtai then gets them through an
external transform that looks each indexed text's vector up and encodes only queries with the
model, so both systems search the same vectors and the same texts.
"""

from __future__ import annotations

import os

import numpy as np

from .common import Clock


def available() -> bool:
    try:
        import txtai  # noqa: F401
    except ImportError:
        return False
    return True


class TxtaiSide:
    def __init__(self, model_path: str, encode_query):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model_path = model_path
        self.encode_query = encode_query  # str -> normalized vector, the same model kb uses
        self.models: dict = {}  # txtai's model cache: the model loads once, outside any timing
        self._warm = False

    def _new(self, hybrid: bool, transform=None):
        from txtai import Embeddings

        config = {"content": True, "hybrid": hybrid, "backend": "faiss"}
        if transform is None:
            config["path"] = self.model_path
        else:
            config["transform"] = transform
        return Embeddings(config, models=self.models)

    def index_seconds(self, texts: list[str]) -> float:
        """A fresh hybrid index of `texts`, embedded by txtai with the model; returns seconds."""
        if not self._warm:
            warm = self._new(hybrid=True)
            warm.index([(0, "warm up", None), (1, "the model loads here", None)])
            warm.close()
            self._warm = True
        embeddings = self._new(hybrid=True)
        with Clock() as clock:
            embeddings.index((i, t, None) for i, t in enumerate(texts))
        embeddings.close()
        return clock.seconds

    def build(self, texts: list[str], vectors: np.ndarray | None, hybrid: bool = True):
        """An index over `texts` for searching; `vectors` (one per text) skip the model when given."""
        transform = None
        if vectors is not None:
            rows = {t: i for i, t in enumerate(texts)}

            def transform(batch):
                out = np.empty((len(batch), vectors.shape[1]), dtype=np.float32)
                for n, text in enumerate(batch):
                    row = rows.get(text)
                    out[n] = vectors[row] if row is not None else self.encode_query(text)
                return out

        embeddings = self._new(hybrid, transform)
        embeddings.index((i, t, None) for i, t in enumerate(texts))
        return embeddings

    @staticmethod
    def search(embeddings, query: str, k: int = 10) -> list:
        return embeddings.search(query, k)
