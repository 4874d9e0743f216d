"""Move a collection between backends: `kb copy --to URL_OR_FOLDER` (SQLite + FAISS to PostgreSQL
and back), with users, audit log, jobs, curator edits, themes, vectors and stored originals."""

from __future__ import annotations

from dataclasses import dataclass, field

from .collection import KnowledgeBase
from .errors import NotFound
from .storage.copy import copy_rows


@dataclass
class CopyReport:
    rows: dict[str, int]
    files: int
    vectors: int
    missing_files: list[str] = field(default_factory=list)


def copy_collection(source: KnowledgeBase, target: KnowledgeBase, replace: bool = False) -> CopyReport:
    """Copy everything from `source` into `target` (refused when it holds a collection, unless
    `replace`). Vectors come from the embedding cache, so the model runs only for what the cache
    lacks (nothing, for a collection made with the same model)."""
    with target.writing():
        rows = copy_rows(source.store, target.store, replace)
        names = sorted({d.stored_path for d in source.store.documents(include_retired=True, limit=10**12) if d.stored_path}
                       | {j.upload_path for j in source.store.jobs.latest(1_000_000) if j.upload_path})
        missing = []
        for name in names:
            try:
                target.files.put(name, source.files.read(name))
            except (NotFound, OSError):
                missing.append(name)
        vectors = target.reindex()
    return CopyReport(rows, len(names) - len(missing), vectors, missing)
