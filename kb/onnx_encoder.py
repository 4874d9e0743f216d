"""Vectors from an exported model on ONNX Runtime, with no torch in the process.

The tokenizer is the model's own `tokenizer.json`, read by the `tokenizers` library and configured
once when loaded (truncation to the model's length for encoding, none for counting), then only
read: request threads, the upload worker and ingest may share it. ONNX Runtime sessions may run
from several threads at once.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from .errors import ConfigError


class Tokens:
    """Token counts and padded model inputs from a `tokenizer.json`, configured once."""

    def __init__(self, path: Path, max_tokens: int):
        from tokenizers import Tokenizer

        try:
            self._counter = Tokenizer.from_file(str(path))
            self._encoder = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises plain Exception for a bad file
            raise ConfigError(f"cannot read tokenizer {path}: {exc}") from None
        # a model's tokenizer.json may carry padding and truncation of its own (the bundled one
        # pads and cuts at 128): set both here, and never touch them again
        self._counter.no_padding()
        self._counter.no_truncation()
        self._encoder.no_padding()
        self._encoder.enable_truncation(max_tokens)
        self.max_tokens = max_tokens

    def count(self, text: str) -> int:
        """Tokens in `text` without special tokens or truncation (what chunking budgets)."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def inputs(self, texts: list[str], names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Input ids, attention mask and token types for a batch, padded to its longest text."""
        encoded = self._encoder.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encoded):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, 1, e.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in names}


class OnnxEncoder:
    """An exported sentence-transformers model (transformer, pooling, normalization in one graph).

    Queries run on a session with `threads` intra-op threads (1 by default: one short text gains
    little from a second thread, and request threads already run side by side); batches run on a
    second session, made when first needed, with `batch_threads` (0: ONNX Runtime's default, every core).
    """

    name = "onnx"

    def __init__(self, folder: Path, threads: int = 1, batch_threads: int = 0, batch_size: int = 16):
        self.folder = Path(folder)
        try:
            self.manifest = json.loads((self.folder / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"no usable ONNX export in {self.folder}: {exc}") from None
        self.dim = int(self.manifest["dim"])
        self.max_tokens = int(self.manifest["max_seq_length"])
        self.input_names = tuple(self.manifest["inputs"])
        self.batch_size = batch_size
        self.tokens = Tokens(self.folder / "tokenizer.json", self.max_tokens)
        self._threads, self._batch_threads = threads, batch_threads
        self._session = self._open(threads)
        self._batch_session = None
        self._lock = threading.Lock()

    def _open(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # waiting threads sleep rather than spin: on a small machine a spinning batch (an upload)
        # would take the cores that request threads need for their queries
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own classes for a bad or missing file
            raise ConfigError(f"cannot load ONNX model {self.folder / 'model.onnx'}: {exc}") from None

    def _run(self, session, texts: list[str]) -> np.ndarray:
        out = session.run(None, self.tokens.inputs(texts, self.input_names))[0]
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self._run(self._session, [text])[0]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalized vectors for many texts: batched by length, so padding stays short."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._batch_session is None and self._batch_threads != self._threads:
            with self._lock:
                if self._batch_session is None:
                    self._batch_session = self._open(self._batch_threads)
        session = self._batch_session or self._session
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out[rows] = self._run(session, [texts[i] for i in rows])
        return out
