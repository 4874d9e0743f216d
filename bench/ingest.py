"""Ingest throughput: `kb ingest` against raw `model.encode` of the same chunk texts and against
txtai's `Embeddings.index`; then re-ingest of the unchanged files against the first ingest.

kb runs in-process through `ingest_paths` (what `kb ingest` calls) with the model already
loaded, so all three sides time the same work: reading, chunking, embedding and storing for kb,
embedding alone for raw encode, embedding and indexing for txtai.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ingest.pipeline import ingest_paths
from kb.collection import KnowledgeBase
from kb.embed import Embedder
from kb.settings import Settings

from .common import Clock, interleaved
from .txtai_side import TxtaiSide


@dataclass
class IngestResult:
    """One corpus: what was ingested and the seconds each side took, round by round."""

    name: str
    files: int
    megabytes: float
    chunks: int
    tokens: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    reingest: list[float] = field(default_factory=list)  # seconds, paired with seconds["kb ingest"]
    failed: list[str] = field(default_factory=list)  # "file: reason" for files kb refused
    data_dir: Path | None = None
    texts: list[str] = field(default_factory=list)


def kb_ingest(source: Path, data_dir: Path, embedder: Embedder,
              settings: Settings | None = None) -> tuple[float, int, list[str]]:
    """One fresh `kb ingest` of `source`; returns (seconds, chunks stored, files refused)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = settings or Settings(data_dir=data_dir)
    kb = KnowledgeBase.open(settings, embedder)
    try:
        with Clock() as clock:
            report = ingest_paths(kb, [source])
        if not report.items or all(i.status == "failed" for i in report.items):
            raise RuntimeError(f"nothing ingested from {source}")
        failed = [f"{Path(i.name).name}: {i.reason}" for i in report.items if i.status == "failed"]
        return clock.seconds, kb.store.count("chunks"), failed
    finally:
        kb.close()


def kb_reingest(source: Path, data_dir: Path, embedder: Embedder) -> float:
    kb = KnowledgeBase.open(Settings(data_dir=data_dir), embedder)
    try:
        with Clock() as clock:
            report = ingest_paths(kb, [source])
        changed = [i for i in report.items if i.status in ("added", "updated")]  # duplicates stay duplicates
        if changed:
            raise RuntimeError(f"re-ingest changed {len(changed)} files")
        return clock.seconds
    finally:
        kb.close()


def embedded_texts(data_dir: Path, embedder: Embedder) -> list[str]:
    """The distinct texts kb embedded for this collection, rebuilt exactly as it built them."""
    kb = KnowledgeBase.open(Settings(data_dir=data_dir), embedder)
    try:
        _, hashes, _ = kb.store.chunk_vectors(kb.settings.model)
        unique = list(dict.fromkeys(hashes))
        texts = kb._texts_for_hashes(unique)  # the same rebuild `kb reindex` relies on
        return [texts[h] for h in unique]
    finally:
        kb.close()


def variants(source: Path, work: Path, embedder: Embedder) -> dict[str, float]:
    """kb ingest of `source` as shipped and with the ingest settings it had before these
    measurements (32 files per ingest batch, encoder batch 32), one round each, beside raw encode
    of the same texts."""
    import ingest.pipeline as pipeline

    other = Embedder.shared(embedder.model_id, 32 if embedder.batch_size != 32 else 16,
                            cache_dir=str(embedder.cache_dir), query_encoder=embedder.query_kind,
                            batch_encoder=embedder.batch_kind, query_threads=embedder.query_threads)
    other.encode(["warm up"])
    shipped = pipeline.BATCH_DOCS
    out: dict[str, float] = {}

    def run(label: str, encoder: Embedder, batch_docs: int) -> None:
        data_dir = work / "variant-data"
        pipeline.BATCH_DOCS = batch_docs
        try:
            settings = Settings(data_dir=data_dir, batch_size=encoder.batch_size)
            out[label] = kb_ingest(source, data_dir, encoder, settings)[0]
        finally:
            pipeline.BATCH_DOCS = shipped

    run(f"kb ingest as shipped ({shipped} files per ingest batch, encoder batch {embedder.batch_size})",
        embedder, shipped)
    texts = embedded_texts(work / "variant-data", embedder)
    out["raw model.encode (one call, batch 32)"] = raw_encode(embedder, texts, 32)
    out[f"raw model.encode (one call, batch {embedder.batch_size})"] = raw_encode(embedder, texts,
                                                                                 embedder.batch_size)
    run(f"kb ingest, encoder batch {other.batch_size}", other, shipped)
    run(f"kb ingest, 32 files per ingest batch, encoder batch {embedder.batch_size}", embedder, 32)
    run(f"kb ingest, 32 files per ingest batch, encoder batch {other.batch_size}", other, 32)
    return out


def raw_encode(embedder: Embedder, texts: list[str], batch_size: int = 32) -> float:
    """`model.encode` of every text in one call (sentence-transformers sorts them by length): the
    model's own speed limit here. Batch 32 is sentence-transformers' default."""
    with Clock() as clock:
        embedder.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    return clock.seconds


def measure(name: str, source: Path, megabytes: float, files: int, work: Path, embedder: Embedder,
            rounds: int, txtai: TxtaiSide | None, txtai_rounds: int | None = None) -> IngestResult:
    """Rounds of kb ingest, raw encode and txtai index, interleaved; each kb round is followed by
    a re-ingest of the same unchanged files into the collection it just built.

    kb goes first in the first round: its collection gives the chunk texts the others encode.
    """
    data_dir = work / f"{name.replace(' ', '-').lower()}-data"
    result = IngestResult(name, files, megabytes, 0, 0, data_dir=data_dir)

    def kb_round() -> float:
        took, result.chunks, result.failed = kb_ingest(source, data_dir, embedder)
        result.reingest.append(kb_reingest(source, data_dir, embedder))
        if not result.texts:
            result.texts = embedded_texts(data_dir, embedder)
            result.tokens = sum(embedder.count_tokens(t) for t in result.texts)
        return took

    runs = {"kb ingest": kb_round, "raw model.encode": lambda: raw_encode(embedder, result.texts)}
    if embedder.batch_size != 32:  # also at kb's own encoder batch size: the stricter reference
        runs[f"raw model.encode, batch {embedder.batch_size} (kb's setting)"] = lambda: raw_encode(
            embedder, result.texts, embedder.batch_size)
    if txtai is not None:
        runs["txtai Embeddings.index"] = lambda: txtai.index_seconds(result.texts)
    result.seconds = interleaved(rounds, runs, {"txtai Embeddings.index": txtai_rounds or rounds})
    return result
