"""Ingest files and folders into a knowledge base: walk, skip what is unchanged, load, store in batches.

Every file gets its own outcome; a file that fails never stops the others. Loading (and chunking
and embedding) may run on Dask workers instead (ingest/distributed.py); the rest stays here.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

from kb.collection import KnowledgeBase, Prepared
from kb.errors import KbError, LoadError
from kb.models import DocMeta, IngestReport, ItemOutcome, LoadedDocument, NewDocument

from .detect import SUPPORTED, unsupported
from .image import IMAGES_OFF
from .isolate import IsolatedLoader
from .meta import MANIFEST, is_metadata_file, meta_from_mapping, read_manifest, read_sidecar
from .ocr import check_setting

# Documents are stored and embedded in batches: one transaction and one index save per batch, and
# one encoder call over all its chunks, which sentence-transformers sorts by length so each encoder
# batch pads little. 32 small files per batch ran at 0.60 x raw encode of the same texts; a batch
# closes at this many files or this much text (docs/benchmarks.md, section 8).
BATCH_DOCS = 256
BATCH_CHARS = 4_000_000
BATCH_BYTES = 64 * 1024 * 1024  # originals held for the batch's one write of stored files
Notify = Callable[[ItemOutcome], None]


class Found(NamedTuple):
    """A file (or folder) a walk comes upon, and why it is not read ("" when it is)."""

    path: Path
    base: Path | None  # the folder whose manifest.csv lists it
    problem: str = ""
    skipped: bool = False  # not read by design (its type, a hidden file, a link): not a failure


def walk(paths: list[Path], follow_symlinks: bool = False, ocr: bool = True) -> Iterator[Found]:
    """Every file under `paths`, in a stable order, each with why it is not read if it is not.

    Folders are read recursively; a folder holding `manifest.csv` contributes the files it lists.
    Symbolic links (to files or folders) are not followed unless asked, and never out of the
    folder being read; only regular files are read (a FIFO would block the run for ever). In a
    folder, hidden files and folders and files of types kb does not read (images too, with OCR
    off) are skipped, each with its reason; a file named itself is always tried. Metadata files
    (manifest.csv, sidecars) are read with the files they describe.
    """
    for given in paths:
        if given.is_symlink() and not follow_symlinks:
            yield Found(given, None, NOT_FOLLOWED, True)
        elif given.is_file():
            yield Found(given, None)
        elif given.is_dir():
            yield from _walk_folder(given, follow_symlinks, ocr)
        elif given.exists():
            yield Found(given, None, "not a regular file", True)
        else:
            yield Found(given, None, "no such file or folder")


NOT_FOLLOWED = "symbolic link not followed (set KB_FOLLOW_SYMLINKS=1 to follow)"
UNLISTED = "not listed in manifest.csv"


def _walk_folder(root: Path, follow_symlinks: bool, ocr: bool) -> Iterator[Found]:
    real_root = root.resolve()
    visited: set[Path] = set()  # real folders read so far: a followed link never loops
    for folder, dirs, files in os.walk(root, followlinks=follow_symlinks):
        base = Path(folder)
        visited.add(base.resolve())
        try:
            listed = read_manifest(base)
        except (OSError, ValueError, csv.Error) as exc:
            dirs[:] = []
            yield Found(base / MANIFEST, None, f"cannot read manifest.csv, so this folder was skipped: {exc}"[:300])
            continue
        if listed:  # the manifest decides what this part of the tree holds
            for path in sorted(listed):
                if real_root != path and real_root not in path.parents:
                    yield Found(path, None, "listed in manifest.csv but outside the folder being read: not read")
                else:
                    yield Found(path, base, "" if path.is_file() else (
                        "listed in manifest.csv but not a regular file" if path.exists()
                        else "listed in manifest.csv but missing"))
            for name in sorted(dirs):  # folders holding none of the files it lists
                below = (base / name).resolve()
                if not any(below in path.parents for path in listed):
                    yield Found(base / name, None, f"folder {UNLISTED}", True)
            for name in sorted(files):
                path = base / name
                if not is_metadata_file(path) and path.resolve() not in listed:
                    yield Found(path, None, UNLISTED, True)
            dirs[:] = []
            continue
        kept = []
        for name in sorted(dirs):
            problem = "hidden folder: not read" if name.startswith(".") else _link_problem(
                base / name, real_root, follow_symlinks)
            if not problem and (base / name).is_symlink() and (base / name).resolve() in visited:
                problem = "symbolic link to a folder already read: not followed"
            if problem:
                yield Found(base / name, None, problem, True)
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = base / name
            if is_metadata_file(path):
                continue
            problem = "hidden file" if name.startswith(".") else _link_problem(path, real_root, follow_symlinks)
            if not problem and path.suffix.lower() not in SUPPORTED:
                problem = unsupported(name)
            if not problem and SUPPORTED[path.suffix.lower()] == "image" and not ocr:
                problem = IMAGES_OFF
            if not problem and not path.is_file():
                problem = "not a regular file" if path.exists() else "symbolic link to nothing"
            yield Found(path, None, problem, bool(problem))


def _link_problem(path: Path, real_root: Path, follow_symlinks: bool) -> str:
    """Why a symbolic link is not followed, or "" for anything else."""
    if not path.is_symlink():
        return ""
    if not follow_symlinks:
        return NOT_FOLLOWED
    target = path.resolve()
    if target != real_root and real_root not in target.parents:
        return "symbolic link leads outside the folder: not followed"
    return ""


@dataclass(frozen=True)
class Candidate:
    """A file to load: its bytes, and what this run decided about it before reading its text."""

    name: str  # how reports name it: the path given
    path: Path
    data: bytes
    sha: str
    source: str
    meta: DocMeta  # manifest row, sidecar and flags: they win over the file's own title and date
    curated: tuple[str, ...]  # the fields a curator's command-line flags set

    @property
    def stored_path(self) -> str:
        return stored_name(self.sha, self.path.suffix)

    def document(self, loaded: LoadedDocument) -> NewDocument:
        """The document this file's loaded text makes."""
        meta = DocMeta(title=loaded.title, published=loaded.published).merged(self.meta)
        return NewDocument(self.source, self.sha, loaded, meta, original_name=self.path.name,
                           stored_path=self.stored_path, label=self.name, curated=self.curated, source_sha=self.sha)


Loaded = tuple[Candidate, NewDocument | Prepared | ItemOutcome]  # a file, ready to store or failed


def ingest_paths(kb: KnowledgeBase, paths: list[Path], flags: DocMeta | None = None, prune: bool = False,
                 notify: Notify | None = None, on_embed: Callable[[int], None] | None = None) -> IngestReport:
    """Ingest files and folders; returns one outcome per file (and per pruned document).

    With `dask_scheduler` set, Dask workers load, chunk and embed the files (ingest/distributed.py);
    deciding what to read and writing the batches stay here either way.
    """
    report = IngestReport()
    settings = kb.settings
    if settings.ocr:
        check_setting(settings.ocr_langs)  # a language Tesseract lacks stops the run before any file

    def record(outcome: ItemOutcome) -> None:
        report.items.append(outcome)
        if notify:
            notify(outcome)

    from .attached import with_attachments

    with kb.writing():
        candidates = _candidates(kb, [Path(p) for p in paths], flags or DocMeta(), record)
        if settings.dask_scheduler:
            from .distributed import prepared_on_dask

            with IsolatedLoader.for_settings(settings) as loader:  # attachments are read here
                _store(kb, with_attachments(kb, prepared_on_dask(settings, candidates, kb.store.find_many, on_embed),
                                            loader), record, on_embed)
        else:
            with IsolatedLoader.for_settings(settings) as loader:
                _store(kb, with_attachments(kb, ((c, load_candidate(loader, c)) for c in candidates), loader),
                       record, on_embed)
        if prune:
            for outcome in _prune(kb, [Path(p) for p in paths]):
                record(outcome)
    return report


def _candidates(kb: KnowledgeBase, paths: list[Path], flags: DocMeta, record: Notify) -> Iterator[Candidate]:
    """The files that need loading, read and hashed; every other file's outcome goes to `record`."""
    forced = tuple(k for k, v in asdict(flags).items() if v not in (None, "", []))  # a curator's own flags
    settings = kb.settings
    seen: dict[str, str] = {}
    manifests: dict[Path, dict] = {}
    for path, base, problem, skipped in walk(paths, settings.follow_symlinks, settings.ocr):
        name = str(path)
        if problem:
            record(ItemOutcome(name, "skipped" if skipped else "failed", problem))
            continue
        try:
            size = path.stat().st_size
            if size > settings.max_file_mb * 1024 * 1024:
                raise LoadError(f"file too large: {size / 1048576:.1f} MB, the limit is {settings.max_file_mb} MB")
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            source = str(path.resolve())
            if base is not None and base not in manifests:
                manifests[base] = read_manifest(base)
            row = manifests.get(base, {}).get(path.resolve(), {})
            meta = meta_from_mapping(row, "manifest.csv").merged(read_sidecar(path)).merged(flags)
            outcome = _unchanged(kb, source, sha, meta, name, seen, forced)
        except (LoadError, OSError) as exc:
            record(ItemOutcome(name, "failed", _reason(exc)))
            continue
        except Exception as exc:  # a bug must not cost the other files
            record(ItemOutcome(name, "failed", f"unexpected error: {type(exc).__name__}: {exc}"[:300]))
            continue
        if outcome:
            record(outcome)
            continue
        seen[sha] = name
        yield Candidate(name, path, data, sha, source, meta, forced)


def load_candidate(loader: IsolatedLoader, candidate: Candidate) -> NewDocument | ItemOutcome:
    """The document a file makes, or its failed outcome: a bad file costs only itself."""
    try:
        return candidate.document(loader.load(candidate.data, candidate.path.name))
    except (LoadError, OSError) as exc:
        return ItemOutcome(candidate.name, "failed", _reason(exc))
    except Exception as exc:  # a loader bug must not cost the other files
        return ItemOutcome(candidate.name, "failed", f"unexpected error: {type(exc).__name__}: {exc}"[:300])


def _store(kb: KnowledgeBase, loaded: Iterable[Loaded], record: Notify,
           on_embed: Callable[[int], None] | None) -> None:
    """Write loaded files in batches (one transaction each, their originals stored just before),
    in the order given; a failed file's outcome is recorded in its place."""
    batch: list[NewDocument | Prepared] = []
    originals: list[tuple[str, bytes]] = []  # the batch's files to keep, stored together before it
    chars = size = 0  # text and bytes in the batch so far

    def flush() -> None:
        nonlocal chars, size
        if not batch:
            return
        try:
            kb.files.put_many(originals)
            for outcome in kb.add_batch(batch, on_embed):
                record(outcome)
        except (KbError, OSError) as exc:  # the batch fails (a full disk, a database gone); the rest goes on
            reason = str(exc) if isinstance(exc, KbError) else f"cannot store the batch: {exc.strerror or exc}"
            for item in batch:
                doc = item.doc if isinstance(item, Prepared) else item
                record(ItemOutcome(doc.label or doc.source, "failed", reason))
        batch.clear()
        originals.clear()
        chars = size = 0

    for candidate, item in loaded:
        if isinstance(item, ItemOutcome):
            record(item)
            continue
        batch.append(item)
        originals.append((candidate.stored_path, candidate.data))
        doc = item.doc if isinstance(item, Prepared) else item
        chars += sum(len(block.text) for block in doc.loaded.blocks)
        size += len(candidate.data)
        if len(batch) >= BATCH_DOCS or chars >= BATCH_CHARS or size >= BATCH_BYTES:
            flush()
    flush()


def _unchanged(kb: KnowledgeBase, source: str, sha: str, meta: DocMeta, name: str,
               seen: dict[str, str], forced: tuple[str, ...]) -> ItemOutcome | None:
    """An outcome when the file needs no loading (its bytes are stored already), or None.

    A path that has a document keeps it: new bytes there are new content for that document. A new
    path whose bytes another document holds is that document moved (when its file is gone), or a
    duplicate (unless that document's own file has changed since, so its bytes are leaving it).
    """
    existing, twin = kb.store.find_source_or_bytes(source, sha)
    if existing is not None:
        if sha in (existing.sha256, existing.source_sha):  # the source_sha: an upload replaced the content
            return _meta_update(kb, existing, meta, name, forced) or ItemOutcome(name, "unchanged", doc_id=existing.id)
        return None
    if sha in seen:
        return ItemOutcome(name, "duplicate", f"same bytes as {seen[sha]}")
    if twin is None:
        return None
    if _file_gone(twin.source):  # moved or renamed: the document follows its file
        moved = kb.move(twin.id, source)
        _meta_update(kb, moved, meta, name, forced)
        return ItemOutcome(name, "moved", f"was {twin.source}", doc_id=twin.id)
    if _file_changed(twin):
        return None
    return ItemOutcome(name, "duplicate", f"same bytes as document {twin.id} ({twin.original_name or twin.source})",
                       doc_id=twin.id)


def _meta_update(kb: KnowledgeBase, doc, meta: DocMeta, name: str, forced: tuple[str, ...]) -> ItemOutcome | None:
    """Apply the metadata given for a file whose bytes are stored already. A field a curator edited
    in the workspace keeps the curator's value, unless a command-line flag sets it now (`forced`)."""
    changes = {k: v for k, v in asdict(meta).items()
               if v not in (None, "", []) and (k in forced or k not in doc.edited) and getattr(doc, k) != v}
    if not changes:
        return None
    for by_curator in (False, True):
        part = {k: v for k, v in changes.items() if (k in forced) == by_curator}
        if part:
            kb.update(doc.id, part, by_curator=by_curator)
    return ItemOutcome(name, "updated", "metadata only", doc_id=doc.id)


def _file_gone(source: str) -> bool:
    """True when a document's source is a path on this machine and nothing is there any more."""
    from .attached import file_of

    return os.path.isabs(source) and not os.path.exists(file_of(source))


def _file_changed(doc) -> bool:
    """True when the file at a document's source now holds other bytes than the document was read from."""
    if not os.path.isabs(doc.source):
        return False
    try:
        sha = hashlib.sha256(Path(doc.source).read_bytes()).hexdigest()
    except OSError:
        return False
    return sha not in (doc.sha256, doc.source_sha)


def stored_name(sha: str, suffix: str) -> str:
    """The name an original is kept under: generated from its hash, never a path it was given."""
    suffix = suffix.lower() if suffix.lower() in SUPPORTED else ""
    return f"files/{sha[:2]}/{sha}{suffix}"


def _prune(kb: KnowledgeBase, paths: list[Path]) -> list[ItemOutcome]:
    from .attached import file_of

    folders = [str(p.resolve()) + os.sep for p in paths if p.is_dir()]
    outcomes = []
    for doc in kb.store.documents(include_retired=True):
        if any(doc.source.startswith(f) for f in folders) and not Path(file_of(doc.source)).exists():
            kb.remove(doc.id)
            outcomes.append(ItemOutcome(doc.source, "pruned", "file is gone", doc_id=doc.id))
    return outcomes


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)
