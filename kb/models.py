"""Typed values passed between loaders, the core and the edges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

VISIBILITIES = ("public", "partners", "curators")
DOC_STATUSES = ("active", "retired")


@dataclass(frozen=True)
class Block:
    """One structural piece of a loaded document: a heading or a paragraph, with its page."""

    text: str
    kind: str = "para"  # "heading" or "para"
    level: int = 0  # heading level 1-6; 0 for paragraphs
    page: int | None = None


@dataclass(frozen=True)
class Attachment:
    """A file carried inside another (an email's attachment): read as a document of its own."""

    name: str
    data: bytes


@dataclass
class LoadedDocument:
    """What a loader returns: the document's blocks plus whatever metadata the file itself carries."""

    blocks: list[Block]
    title: str | None = None
    published: str | None = None
    mime: str = "text/plain"
    warnings: list[str] = field(default_factory=list)  # what was left out or read another way
    attachments: list[Attachment] = field(default_factory=list)  # files it carries, of kinds kb reads


@dataclass
class DocMeta:
    """Curated metadata about a document (from sidecars, a manifest, CLI flags or the curator)."""

    title: str | None = None
    doc_type: str | None = None
    site: str | None = None
    partnership: str | None = None
    published: str | None = None
    tags: list[str] = field(default_factory=list)
    visibility: str | None = None
    source_publication: str | None = None
    original_title: str | None = None

    def merged(self, other: "DocMeta") -> "DocMeta":
        """`other`'s values win where set; tags are the union of both."""
        out = DocMeta(**asdict(self))
        for key, value in asdict(other).items():
            if key == "tags":
                out.tags = list(dict.fromkeys([*self.tags, *value]))
            elif value not in (None, ""):
                setattr(out, key, value)
        return out


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed, with where it came from."""

    ordinal: int
    text: str
    heading: str  # heading path, " > " separated
    page: int | None
    char_start: int
    char_end: int
    tokens: int


@dataclass
class Document:
    id: int
    source: str
    sha256: str
    title: str
    doc_type: str | None
    site: str | None
    partnership: str | None
    published: str | None
    tags: list[str]
    visibility: str
    status: str
    added_at: str
    updated_at: str
    original_name: str | None
    mime: str | None
    stored_path: str | None
    source_publication: str | None
    original_title: str | None
    dup_of: int | None
    edited: list[str] = field(default_factory=list)  # metadata fields a curator has set by hand
    source_sha: str | None = None  # hash of the file at `source` when last read from there
    warnings: list[str] = field(default_factory=list)  # what the loader noted (text read from a scan...)
    chunk_count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ChunkRow(NamedTuple):
    """A stored passage with the fields of its document that search needs."""

    id: int
    doc_id: int
    ordinal: int
    text: str
    heading: str
    page: int | None
    char_start: int
    char_end: int
    title: str
    source: str
    site: str | None
    doc_type: str | None
    published: str | None
    tags: list[str]
    dup_of: int | None
    visibility: str
    status: str


class Passage(NamedTuple):
    """One chunk of a document, as its page and the API list them."""

    id: int
    ordinal: int
    text: str
    heading: str
    page: int | None
    char_start: int
    char_end: int
    tokens: int


@dataclass
class Hit:
    """One search result: a chunk, its document's metadata, a highlighted snippet and a score."""

    doc_id: int
    chunk_id: int
    ordinal: int
    title: str
    source: str
    site: str | None
    doc_type: str | None
    published: str | None
    page: int | None
    heading: str
    text: str
    snippet: str
    score: float
    also_in: list[dict] = field(default_factory=list)
    visibility: str = "public"
    more: list[dict] = field(default_factory=list)  # grouped by document: its next passages (chunk_id, ordinal, page, heading, snippet)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    mode: str
    took_ms: float
    hits: list[Hit]
    total: int  # matching results (passages, or documents when grouped) before paging
    facets: dict[str, dict[str, int]] = field(default_factory=dict)  # over the matching passages
    best_similarity: float | None = None  # cosine of the best passage: low means nothing close
    group: str = "passage"
    passages: int = 0  # matching passages (after folding repeats)
    documents: int = 0  # documents they belong to
    complete: bool = True  # False: the candidate pool was full of matches, so there are at least these
    nearest: list[Hit] = field(default_factory=list)  # nothing matched: the closest passages, uncounted

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "mode": self.mode,
            "took_ms": round(self.took_ms, 2),
            "total": self.total,
            "best_similarity": self.best_similarity,
            "hits": [h.to_dict() for h in self.hits],
            "group": self.group,
            "matching": {"passages": self.passages, "documents": self.documents, "complete": self.complete},
            "nearest": [h.to_dict() for h in self.nearest],
        }


@dataclass
class Filters:
    """Restrictions applied inside search (SQL and FAISS selectors), never after it."""

    site: list[str] = field(default_factory=list)
    doc_type: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    year: list[int] = field(default_factory=list)
    date_from: str | None = None
    date_to: str | None = None
    visibility: tuple[str, ...] = VISIBILITIES  # what the reader may see
    doc_ids: list[int] | None = None

    def is_unrestricted(self) -> bool:
        return not (self.site or self.doc_type or self.tag or self.year or self.date_from or self.date_to
                    or self.doc_ids is not None) and set(self.visibility) >= set(VISIBILITIES)


@dataclass
class ItemOutcome:
    """What happened to one file during ingestion."""

    name: str
    status: str  # added | updated | unchanged | moved | duplicate | failed | skipped | pruned
    reason: str = ""
    doc_id: int | None = None
    chunks: int = 0


@dataclass
class IngestReport:
    items: list[ItemOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def failed(self) -> list[ItemOutcome]:
        return [i for i in self.items if i.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict:
        keys = ("added", "updated", "unchanged", "moved", "duplicate", "failed", "skipped", "pruned")
        return {k: self.count(k) for k in keys}


@dataclass
class NewDocument:
    """A loaded file on its way into the store."""

    source: str
    sha256: str
    loaded: LoadedDocument
    meta: DocMeta
    original_name: str | None = None
    stored_path: str | None = None
    label: str | None = None  # how reports name it (the path given, the upload's name)
    curated: tuple[str, ...] = ()  # metadata fields a curator set for this version (upload form, CLI flags)
    source_sha: str | None = None  # the hash of the file read from `source`; None for an upload


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: str

    def visibility(self) -> tuple[str, ...]:
        return VISIBILITIES if self.role == "curator" else ("public", "partners")


@dataclass
class Job:
    """A background job (an upload to load and embed) as curators watch it."""

    id: int
    kind: str
    created_by: str
    original_name: str
    upload_path: str | None
    meta: dict
    status: str
    progress: int
    message: str
    doc_id: int | None
    duplicate_of: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class Follow:
    """A user's follow: of a learning question (`question_id`), or of a saved search (`query` and
    `params`, the search page's own filter parameters: site, type, year, tag, from, to, mode)."""
    id: int
    user_id: int
    question_id: int | None
    query: str
    params: dict[str, list[str]]
    created_at: str
    seen_at: str  # the user's last look: passages of documents added or updated since are new
    seen_mark: int  # the store's change count at that look (see kb/follows.py)
