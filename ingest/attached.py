"""Files inside files: an email's attachments, read as documents of their own.

Each attachment of a kind kb reads becomes a document whose source is its message's and its own
name, "<message source>#<attachment name>", so it is found, replaced and pruned with its message.
It takes the message's site, partnership, tags and visibility (who sent it and who may see it),
never its title or date. The ingest reports a line for the message and one for each attachment.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

from kb.collection import KnowledgeBase, Prepared
from kb.errors import LoadError
from kb.models import DocMeta, ItemOutcome, LoadedDocument, NewDocument

from .isolate import IsolatedLoader
from .pipeline import Candidate, Loaded, _unchanged, load_candidate, stored_name

INHERITED = ("site", "partnership", "tags", "visibility")
MAX_NESTING = 3  # a message attached to a message attached to a message, and no deeper
SEPARATOR = "#"


def with_attachments(kb: KnowledgeBase, loaded: Iterable[Loaded], loader: IsolatedLoader,
                     depth: int = 0) -> Iterator[Loaded]:
    """Each loaded file, followed by its attachments (loaded by `loader`, each with its own limits),
    and theirs, up to MAX_NESTING deep."""
    for candidate, item in loaded:
        yield candidate, item
        if isinstance(item, ItemOutcome) or depth >= MAX_NESTING:
            continue
        doc = item.doc if isinstance(item, Prepared) else item
        for inner in attachment_candidates(candidate, doc.loaded.attachments):
            outcome = _unchanged(kb, inner.source, inner.sha, inner.meta, inner.name, {}, inner.curated)
            if outcome is not None:
                yield inner, outcome
                continue
            yield from with_attachments(kb, [(inner, load_candidate(loader, inner))], loader, depth + 1)


def attachment_candidates(message: Candidate, attachments) -> list[Candidate]:
    """The attachments as files to load, named and sourced under their message."""
    meta = DocMeta(**{k: getattr(message.meta, k) for k in INHERITED})
    curated = tuple(k for k in message.curated if k in INHERITED)
    return [Candidate(f"{message.name}{SEPARATOR}{a.name}", Path(a.name), a.data, hashlib.sha256(a.data).hexdigest(),
                      f"{message.source}{SEPARATOR}{a.name}", replace(meta, tags=list(meta.tags)), curated)
            for a in attachments]


def file_of(source: str) -> str:
    """The file on disk a source lives in: the source itself, or for an attachment
    ("/notes/update.eml#report.pdf") the message file that holds it."""
    if os.path.exists(source):
        return source
    at = source.find(SEPARATOR)
    while at > 0:
        if os.path.isfile(source[:at]):
            return source[:at]
        at = source.find(SEPARATOR, at + 1)
    return source


def uploaded_attachments(kb: KnowledgeBase, source: str, loaded: LoadedDocument, meta: DocMeta,
                         curated: tuple[str, ...], label: str) -> tuple[list[NewDocument], list[str]]:
    """An uploaded message's attachments (and theirs) as documents to store with it, their originals
    stored now; and for each that could not be read, a line saying why."""
    inherited = DocMeta(**{k: getattr(meta, k) for k in INHERITED})
    docs, lines = [], []
    queue = [(source, label, a, 1) for a in loaded.attachments]
    with IsolatedLoader.for_settings(kb.settings) as loader:
        while queue:
            parent, parent_label, attachment, depth = queue.pop(0)
            name = f"{parent_label}{SEPARATOR}{attachment.name}"
            try:
                inner = loader.load(attachment.data, attachment.name)
            except LoadError as exc:
                lines.append(f"{name}: {exc}")
                continue
            sha = hashlib.sha256(attachment.data).hexdigest()
            stored = stored_name(sha, Path(attachment.name).suffix)
            kb.files.put(stored, attachment.data)
            item_source = f"{parent}{SEPARATOR}{attachment.name}"
            docs.append(NewDocument(item_source, sha, inner,
                                    DocMeta(title=inner.title, published=inner.published).merged(inherited),
                                    original_name=attachment.name, stored_path=stored, label=name,
                                    curated=tuple(k for k in curated if k in INHERITED)))
            if depth < MAX_NESTING:
                queue += [(item_source, name, a, depth + 1) for a in inner.attachments]
    return docs, lines
