"""Loading, chunking and embedding on Dask workers: `kb ingest --dask tcp://HOST:PORT`.

The coordinator (`kb ingest`) walks, hashes and skips unchanged files as always, then sends each
task a few files' bytes with what it decided about them (no shared folder is assumed). A worker
loads them in its isolated loader, with the same limits, chunks them, embeds the chunks with the
model it loaded once, and returns them `Prepared`; the coordinator writes them in order, in the
batches and transactions of a local ingest. Dask runs a task again elsewhere when its worker dies
(`distributed.scheduler.allowed-failures`); a task that fails for good is split into one task per
file, so a file that cannot be done fails alone.

A worker's encoder runs one thread per worker thread, as numerical libraries do under a Dask
nanny (OMP_NUM_THREADS=1): a local ingest's encoder takes every core, which two workers on one
machine would fight over.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kb.collection import Prepared, embedded_title, encode_texts, prepare
from kb.embed import Embedder
from kb.errors import ConfigError
from kb.models import Document, ItemOutcome, NewDocument
from kb.settings import Settings

from .isolate import IsolatedLoader
from .pipeline import Candidate, Loaded, load_candidate

# Files per task: a worker sorts a task's texts by length for its encoder batches, and with one
# MS MARCO passage a file, 64 files padded 24% more tokens than there are, 256 files 7% (a local
# ingest's batch, BATCH_DOCS, the same). The first tasks are smaller (4, 8, 16, ...), so that every
# worker has work soon and a small folder is shared too; a task closes early at TASK_BYTES of files
# (what travels; about 2,500 chunks of plain text), so that large files spread over the workers.
TASK_FILES = 256
FIRST_TASK_FILES = 4
TASK_BYTES = 1024 * 1024
AHEAD = 2  # tasks submitted per worker thread: one running, the next already there when it ends
CONNECT_SECONDS = 30  # Dask's own default: a scheduler may still be starting
Progress = Callable[[int], None]


def prepared_on_dask(settings: Settings, candidates: Iterable[Candidate],
                     lookup: Callable[[list[str]], dict[str, Document]],
                     progress: Progress | None = None) -> Iterator[Loaded]:
    """Each candidate with its document prepared (chunked and embedded) by the workers of the
    scheduler at `settings.dask_scheduler`, or with why it failed, in the order given. `lookup`
    finds the stored documents of some sources: their titles decide the text embedded."""
    from distributed import Client

    try:
        client = Client(settings.dask_scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {settings.dask_scheduler}: {exc}") from None
    settings = _for_workers(settings)
    try:
        ahead = max(2, AHEAD * sum(client.nthreads().values()))
        pending: deque = deque()
        for number, files in enumerate(_tasks(candidates)):
            found = lookup([c.source for c in files])
            stored = [found.get(c.source) for c in files]
            # earlier tasks first: their results are written first
            future = client.submit(prepare_files, settings, files, stored, pure=False, priority=-number)
            pending.append((files, stored, future))
            while len(pending) >= ahead:
                yield from _results(client, settings, *pending.popleft(), progress)
        while pending:
            yield from _results(client, settings, *pending.popleft(), progress)
    finally:
        client.close()


def _for_workers(settings: Settings) -> Settings:
    """What workers need of the settings (the model, chunking, loading limits) and nothing secret;
    the export's folder as this process resolves it (a relative data folder means nothing there)."""
    return Settings(model=settings.model, chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                    query_encoder=settings.query_encoder, batch_encoder=settings.batch_encoder,
                    batch_size=settings.batch_size, model_cache=Path(settings.model_cache_dir).resolve(),
                    max_pdf_pages=settings.max_pdf_pages, max_load_seconds=settings.max_load_seconds)


def _tasks(candidates: Iterable[Candidate]) -> Iterator[list[Candidate]]:
    files: list[Candidate] = []
    size, limit = 0, min(FIRST_TASK_FILES, TASK_FILES)
    for candidate in candidates:
        files.append(candidate)
        size += len(candidate.data)
        if len(files) >= limit or size >= TASK_BYTES:
            yield files
            files, size, limit = [], 0, min(2 * limit, TASK_FILES)
    if files:
        yield files


def _results(client, settings: Settings, files: list[Candidate], stored: list[Document | None], future,
             progress: Progress | None) -> list[Loaded]:
    """A task's files with their results; when the task failed, its files again, one task each."""
    try:
        results = future.result()
    except Exception as exc:  # KilledWorker once the retries are spent, an error in the task, a lost scheduler
        if len(files) == 1 or isinstance(exc, CancelledError):  # cancelled: no scheduler to send them to
            reason = f"failed on the Dask workers: {type(exc).__name__}: {exc}"[:300]
            return [(c, ItemOutcome(c.name, "failed", reason)) for c in files]
        singles = [client.submit(prepare_files, settings, [c], [old], pure=False, priority=1)
                   for c, old in zip(files, stored)]
        return [loaded for c, old, single in zip(files, stored, singles)
                for loaded in _results(client, settings, [c], [old], single, progress)]
    finally:
        future.release()
    if progress:
        progress(sum(len(p.vectors) for p in results if isinstance(p, Prepared)))
    return list(zip(files, results))


# on the workers ---------------------------------------------------------------------------------

def prepare_files(settings: Settings, files: list[Candidate], stored: list[Document | None]) -> list[Prepared | ItemOutcome]:
    """A task: load, chunk and embed these files (`stored`: each one's stored document, or None)."""
    cache = os.environ.get("KB_MODEL_CACHE")  # this machine's own, where it has one
    settings = replace(settings, model_cache=Path(cache)) if cache else settings
    embedder = _embedder(settings)
    loader = _loader(settings)
    out: list[Prepared | ItemOutcome] = []
    for candidate, old in zip(files, stored):
        doc = load_candidate(loader, candidate)
        try:
            out.append(prepare(doc, embedded_title(doc, old), embedder.count_tokens, settings)
                       if isinstance(doc, NewDocument) else doc)
        except Exception as exc:  # a chunking bug must not cost the task's other files
            out.append(ItemOutcome(candidate.name, "failed", f"unexpected error: {type(exc).__name__}: {exc}"[:300]))
    ready = [p for p in out if isinstance(p, Prepared)]
    vectors = encode_texts(embedder, {h: t for p in ready for h, t in zip(p.hashes, p.texts)})
    for p in ready:
        p.vectors = {h: vectors[h] for h in p.hashes}
    return out


def _worker_embedder(settings: Settings) -> Embedder:
    """The model as a worker runs it: passages on one ONNX Runtime thread (a local ingest's
    encoder takes every core); one per worker process."""
    return Embedder(settings.model, settings.batch_size, query_encoder=settings.query_encoder,
                    batch_encoder=settings.batch_encoder, query_threads=1, batch_threads=1,
                    cache_dir=str(settings.model_cache_dir))


_embedders: dict[tuple, Embedder] = {}
_embedders_lock = threading.Lock()
_loaders = threading.local()  # an isolated loader per worker thread: each serves one file at a time


def _embedder(settings: Settings) -> Embedder:
    key = (settings.model, settings.batch_size, settings.query_encoder, settings.batch_encoder, settings.model_cache)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = _worker_embedder(settings)
        return _embedders[key]


def _loader(settings: Settings) -> IsolatedLoader:
    loader = IsolatedLoader.for_settings(settings)
    key = (loader.max_pdf_pages, loader.max_seconds, loader.ocr)
    if getattr(_loaders, "limits", None) != key:
        if getattr(_loaders, "loader", None):
            _loaders.loader.close()
        _loaders.limits, _loaders.loader = key, loader
    return _loaders.loader
