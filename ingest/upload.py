"""Uploaded files: stored under generated names, checked for duplicates, ingested as a job."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

from kb.chunk import document_text
from kb.collection import KnowledgeBase
from kb.errors import LoadError, NotFound
from kb.jobs import Job, Jobs
from kb.models import DocMeta, NewDocument

from .attached import uploaded_attachments
from .detect import detect
from .image import IMAGES_OFF
from .isolate import IsolatedLoader
from .meta import meta_from_mapping
from .pipeline import stored_name

MAX_NAME_CHARS = 200
MAX_SUFFIX_CHARS = 16  # ".markdown" and the like; anything longer is part of the name


def safe_name(name: str) -> str:
    """A display name from an uploaded file name: no folders, no control characters. Never a path."""
    name = (name or "").replace("\x00", "")
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = "".join(ch for ch in name if ch.isprintable()).strip().strip(".")
    if len(name) > MAX_NAME_CHARS:  # cut before the extension, which says what the file is
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= MAX_SUFFIX_CHARS else ""
        name = name[:MAX_NAME_CHARS - len(suffix)].rstrip(". ") + suffix
    return name or "upload"


def stage(kb: KnowledgeBase, data: bytes, name: str) -> str:
    """Keep an upload under a generated name until its job runs; returns the name.

    The type is checked by content first, so an unsupported file is refused before a job exists.
    """
    if detect(data, safe_name(name)) == "image" and not kb.settings.ocr:
        raise LoadError(IMAGES_OFF)
    rel = f"uploads/{uuid.uuid4().hex}.bin"
    kb.files.put(rel, data)
    return rel


def run_upload(kb: KnowledgeBase, jobs: Jobs, job: Job, decision: str | None = None) -> Job:
    """Load and ingest one uploaded file. A file matching a stored document waits for a decision:
    keep both, replace the match, or cancel."""
    try:
        data = kb.files.read(job.upload_path or "")
    except (OSError, NotFound):
        return jobs.update(job.id, status="failed", message="the uploaded file is missing", progress=100)
    jobs.update(job.id, status="running", progress=10, message="reading")
    sha = hashlib.sha256(data).hexdigest()
    try:
        given = meta_from_mapping(job.meta, "upload form")
        with IsolatedLoader.for_settings(kb.settings) as loader:
            loaded = loader.load(data, job.original_name)
    except LoadError as exc:
        kb.files.delete(job.upload_path)  # nothing can come of this upload now
        return jobs.update(job.id, status="failed", message=str(exc), progress=100)
    if decision is None:
        same = kb.store.find_by_sha(sha)
        if same is not None:
            return jobs.update(job.id, status="needs_decision", duplicate_of=same.id, progress=30,
                               message=f"the same file is already stored as document {same.id}")
        body, _ = document_text(loaded.blocks)
        near, score = kb.near_duplicate_of(body)
        if near is not None:
            return jobs.update(job.id, status="needs_decision", duplicate_of=near, progress=30,
                               message=f"nearly the same text as document {near} (similarity {score:.2f})")
    source = f"upload:{uuid.uuid4().hex}"
    if decision == "replace" and job.duplicate_of:
        source = kb.store.get(job.duplicate_of).source
        # new content for a document whose readers are settled: the form's visibility (a default a
        # curator may not have looked at) is for new documents; an edit changes this one's
        given = replace(given, visibility=None)
    jobs.update(job.id, progress=40, message="embedding")
    meta = DocMeta(title=loaded.title, published=loaded.published).merged(given)
    stored = stored_name(sha, Path(job.original_name).suffix)
    kb.files.put(stored, data)
    curated = tuple(k for k, v in asdict(given).items() if v not in (None, "", []))  # the form's fields
    doc = NewDocument(source, sha, loaded, meta, original_name=job.original_name, stored_path=stored,
                      label=job.original_name, curated=curated)
    attached, failed = uploaded_attachments(kb, source, loaded, meta, curated, job.original_name)
    with kb.writing():
        outcome, *others = kb.add_batch([doc, *attached])
    kb.files.delete(job.upload_path)
    lines = [f"{o.name}: {o.status}, {o.chunks} passages" for o in others] + failed
    return jobs.update(job.id, status="done", progress=100, doc_id=outcome.doc_id,
                       message="; ".join([f"{outcome.status}: {outcome.chunks} passages", *lines]))
