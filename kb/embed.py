"""Text to vectors: ONNX Runtime by default, sentence-transformers (torch) when asked or needed.

`Embedder` is what the rest of kb uses. It counts tokens with the model's own `tokenizer.json`
(the `tokenizers` library, configured once), encodes queries on the query encoder and batches on
the batch encoder (each `onnx` or `torch`, from the settings), and remembers recent query vectors.
Only the torch encoder imports torch, and only when it is first used: a process that serves
queries on ONNX never loads it. A missing ONNX export is made by a child process (torch stays out
of this one); a model that cannot be exported faithfully is served by torch, said once.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .model_files import export_place, resolve_model
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)
EXPORT_TIMEOUT = 900  # seconds; the bundled model exports and verifies in about 20 s here

__all__ = ["Embedder", "TorchEncoder", "load_cross_encoder", "resolve_model"]


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class TorchEncoder:
    """A sentence-transformers model on torch. Calls are serialized by a lock: the Hugging Face
    tokenizer inside keeps padding and truncation as state it changes on every call, so two
    threads at once could pad one batch by another's rules or fail with "Already borrowed"."""

    name = "torch"

    def __init__(self, model: str, batch_size: int = DEFAULT_BATCH_SIZE):
        _offline()
        from sentence_transformers import SentenceTransformer

        path = resolve_model(model)
        try:
            self.model = SentenceTransformer(path, device="cpu").eval()
        except Exception as exc:  # the library raises many kinds; all mean "cannot load"
            where = "folder" if Path(path).exists() else "name (offline: only local models load)"
            raise ConfigError(f"cannot load model {model!r} from {where}: {exc}") from None
        self.batch_size = batch_size
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get())
        self.max_tokens = int(self.model.max_seq_length)
        self._lock = threading.Lock()

    def set_threads(self, count: int) -> None:
        """Torch threads for this process. Answering queries wants 1: on 2 cores a second thread
        buys little for one short text, and when other work shares the machine the threads
        spin-wait on each other (measured: 14 ms a query with 1 thread, 390-490 ms with 2)."""
        if count > 0:
            import torch

            torch.set_num_threads(count)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self.model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


class Embedder:
    """Normalized float32 vectors and token counts for one model, safe to share between threads."""

    _shared: dict[tuple, "Embedder"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE, **options) -> "Embedder":
        """One instance per model and options in a process, so the model loads once."""
        key = (model, batch_size, *sorted(options.items()))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(model, batch_size, **options)
            return cls._shared[key]

    @classmethod
    def for_settings(cls, settings: Settings) -> "Embedder":
        return cls.shared(settings.model, settings.batch_size, query_encoder=settings.query_encoder,
                          batch_encoder=settings.batch_encoder, query_threads=settings.query_threads,
                          cache_dir=str(settings.model_cache_dir))

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE, query_cache: int = 1024,
                 *, cache_dir: str | Path, query_encoder: str = "onnx", batch_encoder: str = "onnx",
                 query_threads: int = 1, batch_threads: int = 0):
        self.model_id = model
        self.batch_size = batch_size
        self.query_kind, self.batch_kind = query_encoder, batch_encoder
        self.query_threads = query_threads
        self.batch_threads = batch_threads  # ONNX Runtime threads that embed passages (0: every core)
        self.cache_dir = Path(cache_dir)  # where ONNX exports are kept (Settings.model_cache_dir)
        self.fallback: str | None = None  # why ONNX is not used, once known
        self._lock = threading.RLock()  # loading the encoders
        self.loading = False  # an encoder is loading now (kb ingest's progress bar says so)
        self._tokens_lock = threading.Lock()
        self._onnx = None
        self._onnx_tried = False
        self._torch: TorchEncoder | None = None
        self._tokens = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()
        self._query_cache = query_cache

    # the two encoders, each loaded when first needed ---------------------------------------

    def _onnx_encoder(self):
        """The ONNX encoder, exporting the model first if needed; None (said once) when it cannot."""
        if self._onnx_tried:
            return self._onnx
        with self._lock:
            if self._onnx_tried:
                return self._onnx
            self.loading = True
            try:
                self._onnx = self._load_onnx()
            except Exception as exc:  # whatever stops ONNX (a refusal, a broken file, no permission): torch serves
                self.fallback = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                log.warning("%s; using torch for model %s", self.fallback, self.model_id)
            finally:
                self._onnx_tried = True
                self.loading = False
            return self._onnx

    def _load_onnx(self):
        from .onnx_encoder import OnnxEncoder

        place = export_place(self.model_id, self.cache_dir)
        if place is None:
            raise ConfigError(f"{self.model_id} is not a local model folder, so it cannot be exported to ONNX")
        if not place.ready() and not place.refused:
            # a child process exports, so that torch never enters this one
            _offline()
            log.warning("exporting %s to ONNX Runtime once, verified against torch (about 20 s)", self.model_id)
            try:
                done = subprocess.run([sys.executable, "-m", "kb.onnx_export", self.model_id, str(self.cache_dir)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, timeout=EXPORT_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise ConfigError(f"exporting {self.model_id} to ONNX took over {EXPORT_TIMEOUT} s") from None
            if done.returncode != 0 and not place.ready() and not place.refused:
                tail = " ".join(line.strip() for line in done.stderr.strip().splitlines()[-3:])
                raise ConfigError(f"exporting {self.model_id} to ONNX failed: {tail or done.returncode}")
        if not place.ready():
            refused = place.refused or {}
            raise ConfigError(refused.get("reason") or f"no ONNX export of {self.model_id} in {place.folder}")
        return OnnxEncoder(place.folder, threads=self.query_threads, batch_threads=self.batch_threads,
                           batch_size=self.batch_size)

    def _torch_encoder(self) -> TorchEncoder:
        if self._torch is None:
            with self._lock:
                if self._torch is None:
                    self.loading = True
                    try:
                        self._torch = TorchEncoder(self.model_id, self.batch_size)
                    finally:
                        self.loading = False
        return self._torch

    def _encoder(self, kind: str):
        if kind == "onnx":
            encoder = self._onnx_encoder()
            if encoder is not None:
                return encoder
        return self._torch_encoder()

    @property
    def query_encoder(self):
        return self._encoder(self.query_kind)

    @property
    def batch_encoder(self):
        return self._encoder(self.batch_kind)

    def warm(self) -> "Embedder":
        """Load the query encoder now (not on the first visitor's search); on torch, set its
        threads for answering queries."""
        encoder = self.query_encoder
        if isinstance(encoder, TorchEncoder):
            encoder.set_threads(self.query_threads)
        encoder.encode_one("warm up")  # a session's first run allocates and plans: not a visitor's
        return self

    def describe(self) -> dict:
        """Which encoder answers queries and which embeds batches, as loaded so far."""
        def name(kind: str) -> str:
            if kind == "onnx" and self._onnx_tried and self._onnx is None:
                return "torch (fallback)"
            return kind

        out = {"query_encoder": name(self.query_kind), "batch_encoder": name(self.batch_kind)}
        if self._onnx is not None:
            out["onnx_export"] = str(self._onnx.folder)
        if self.fallback:
            out["fallback_reason"] = self.fallback
        return out

    # what the rest of kb calls ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.query_encoder.dim

    @property
    def max_tokens(self) -> int:
        return self.query_encoder.max_tokens

    @property
    def model(self):
        """The sentence-transformers model itself (loads torch): for benchmarks and tools."""
        return self._torch_encoder().model

    def count_tokens(self, text: str) -> int:
        """Model tokens in `text` (no special tokens, no truncation), without loading any model
        when the model folder has a tokenizer.json."""
        tokens = self._token_counter()
        return tokens.count(text) if tokens is not None else self._torch_encoder().count_tokens(text)

    def _token_counter(self):
        """The model's tokenizer.json, read once: the loaded ONNX encoder's, else the model
        folder's own, else the export's (a fast tokenizer saved at export); None when only torch's
        tokenizer will do."""
        if self._tokens is None:
            with self._tokens_lock:
                if self._tokens is None:
                    self._tokens = self._load_tokens() or False
        return self._tokens or None

    def _load_tokens(self):
        from .onnx_encoder import Tokens

        if self._onnx is not None:  # already read (a server warms its query encoder first)
            return self._onnx.tokens
        folder = Path(resolve_model(self.model_id))
        if (folder / "tokenizer.json").is_file():
            # truncation is never used for counting, so the length given here does not matter
            return Tokens(folder / "tokenizer.json", max_tokens=1 << 20)
        onnx = self._onnx_encoder() if "onnx" in (self.query_kind, self.batch_kind) else None
        return onnx.tokens if onnx is not None else None

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.batch_encoder.encode(list(texts))

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, remembered for repeated queries (pagination, facets)."""
        with self._queries_lock:
            hit = self._queries.get(text)
            if hit is not None:
                self._queries.move_to_end(text)
                return hit
        vector = self.query_encoder.encode_one(text)
        vector.setflags(write=False)  # shared by every caller of this text
        with self._queries_lock:
            self._queries[text] = vector
            self._queries.move_to_end(text)
            while len(self._queries) > self._query_cache:
                self._queries.popitem(last=False)
        return vector

    def forget_queries(self) -> None:
        with self._queries_lock:
            self._queries.clear()


def load_cross_encoder(name: str):
    """A sentence-transformers CrossEncoder from a local folder or name (offline: local only)."""
    _offline()
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(name, device="cpu")
    except Exception as exc:  # the library raises many kinds; all mean "cannot load"
        raise ConfigError(f"cannot load reranker {name!r}: {exc}") from None
