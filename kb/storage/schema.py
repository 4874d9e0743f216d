"""The tables, declared once for SQLAlchemy Core: every query outside the dialect-specific parts is
built from these. They mirror the schema the numbered SQLite migrations leave (version 6).

The keyword index is the one part each database keeps its own way: FTS5's virtual tables in SQLite
(one per reader level, with `keyword_levels`; made by the migrations, queried in keyword.py),
`chunk_search`, `term_stats` and `term_postings` in PostgreSQL (below). PostgreSQL also
keeps the vectors (`chunk_vectors`, pgvector) and the stored originals (`files`) that SQLite leaves
to FAISS files and the data folder.
"""

from __future__ import annotations

from pgvector.sqlalchemy import Vector
from sqlalchemy import (REAL, BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        SmallInteger, Table, Text, UniqueConstraint)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR

metadata = MetaData()

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False, unique=True),
    Column("sha256", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("doc_type", Text),
    Column("site", Text),
    Column("partnership", Text),
    Column("published", Text),
    Column("tags", Text, nullable=False, server_default="[]"),  # a JSON list
    Column("visibility", Text, nullable=False, server_default="public"),
    Column("status", Text, nullable=False, server_default="active"),
    Column("added_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("original_name", Text),
    Column("mime", Text),
    Column("stored_path", Text),
    Column("source_publication", Text),
    Column("original_title", Text),
    Column("body", Text, nullable=False, server_default=""),
    Column("signature", LargeBinary),
    Column("dup_of", Integer, ForeignKey("documents.id", ondelete="SET NULL")),
    Column("dup_score", Float),
    Column("edited", Text, nullable=False, server_default="[]"),  # a JSON list of field names
    Column("source_sha", Text),
    Column("warnings", Text, nullable=False, server_default="[]"),  # a JSON list: what the loader noted
    Index("documents_sha", "sha256"),
    Index("documents_site", "site"),
    Index("documents_type", "doc_type"),
    Index("documents_source_sha", "source_sha"),
    Index("documents_stored_path", "stored_path"),
)

chunks = Table(
    "chunks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("heading", Text, nullable=False, server_default=""),
    Column("page", Integer),
    Column("char_start", Integer, nullable=False),
    Column("char_end", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("text_hash", Text, nullable=False),
    UniqueConstraint("doc_id", "ordinal"),
    Index("chunks_hash", "text_hash"),
)

embeddings = Table(  # the vector cache, keyed by (model, text hash)
    "embeddings", metadata,
    Column("model", Text, primary_key=True),
    Column("text_hash", Text, primary_key=True),
    Column("vector", LargeBinary, nullable=False),  # float32, native order
    Index("embeddings_hash", "text_hash"),
)

doc_bands = Table(  # locality-sensitive hashing bands of each document's MinHash signature
    "doc_bands", metadata,
    Column("band", Text, primary_key=True),
    Column("doc_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Index("doc_bands_doc", "doc_id"),
)

meta = Table(  # counters: generation (chunks changed), revision (metadata changed), themes_*
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),  # compared without regard to case
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("sessions_user", "user_id"),
)

login_failures = Table(
    "login_failures", metadata,
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_at", Float, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default=""),
    Index("audit_at", "at"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False, server_default="upload"),
    Column("created_by", Text, nullable=False),
    Column("original_name", Text, nullable=False, server_default=""),
    Column("upload_path", Text),
    Column("meta", Text, nullable=False, server_default="{}"),  # a JSON object
    Column("status", Text, nullable=False),
    Column("progress", Integer, nullable=False, server_default="0"),
    Column("message", Text, nullable=False, server_default=""),
    Column("doc_id", Integer),
    Column("duplicate_of", Integer),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("owner", Text),  # host:pid of the process running it
    Index("jobs_status", "status"),
)

themes = Table(
    "themes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("label", Text, nullable=False),
    Column("terms", Text, nullable=False),  # a JSON list
    Column("size", Integer, nullable=False),
    Column("name", Text),  # a curator's name for the theme, shown to every reader instead of the label
    Column("centroid", LargeBinary),  # float32 little-endian: the next build's theme this close keeps the name
)

chunk_themes = Table(
    "chunk_themes", metadata,
    Column("chunk_id", Integer, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("theme_id", Integer, ForeignKey("themes.id", ondelete="CASCADE"), nullable=False),
    Column("score", Float, nullable=False),
    Index("chunk_themes_theme", "theme_id"),
)


# learning questions, follows and analytics (Alembic revision 0006) -------------------------------

questions = Table(
    "questions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("filters", Text, nullable=False, server_default="{}"),  # JSON: site and type lists, from, to
    Column("status", Text, nullable=False, server_default="active"),  # active or archived
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("reviewed_at", Text),  # when a curator last reviewed its evidence
)

judgements = Table(  # a passage judged for a question, by document and text (chunk ids change on re-ingest)
    "judgements", metadata,
    Column("question_id", Integer, ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True),
    Column("doc_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("text_hash", Text, primary_key=True),
    Column("chunk_id", Integer, nullable=False),
    Column("verdict", Text, nullable=False),  # evidence or not_evidence
    Column("source", Text, nullable=False, server_default="curator"),  # curator or feedback
    Column("by", Text, nullable=False),
    Column("at", Text, nullable=False),
)

follows = Table(  # a user's follow of a question, or of a saved search (query and filters)
    "follows", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("question_id", Integer, ForeignKey("questions.id", ondelete="CASCADE")),
    Column("query", Text, nullable=False, server_default=""),
    Column("filters", Text, nullable=False, server_default="{}"),
    Column("created_at", Text, nullable=False),
    Column("seen_at", Text, nullable=False),  # the user's last look: later passages count as new
    Column("seen_mark", Integer, nullable=False, server_default="0"),  # the store's change count then
)

feed_tokens = Table(  # one secret per user for feed URLs, kept as a hash; a new one revokes the old
    "feed_tokens", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
)

search_log = Table(  # what was searched, never by whom
    "search_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Text, nullable=False),  # YYYY-MM-DD
    Column("query", Text, nullable=False),  # normalized
    Column("mode", Text, nullable=False),
    Column("results", Integer, nullable=False),  # matching documents
    Column("best", Float),  # best similarity, when the mode had one
)

result_opens = Table(  # a result opened from a search, never by whom
    "result_opens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("doc_id", Integer, nullable=False),
    Column("chunk_id", Integer),
)

feedback = Table(  # helpful or not on a result, from a signed-in user, never by whom
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("doc_id", Integer, nullable=False),
    Column("chunk_id", Integer, nullable=False),
    Column("helpful", Boolean, nullable=False),
    Column("question_id", Integer, ForeignKey("questions.id", ondelete="SET NULL")),
)

# PostgreSQL only ------------------------------------------------------------------------------

chunk_search = Table(  # weighted terms of each chunk: text A, heading path B, document title C
    "chunk_search", metadata,
    Column("chunk_id", Integer, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("terms", TSVECTOR, nullable=False),
    Column("length", Integer, nullable=False),  # tokens in text, headings and title (BM25's document length)
    Column("lexemes", ARRAY(Text), nullable=False),  # the tsvector's lexemes, sorted, and beside them
    Column("tfs", ARRAY(REAL), nullable=False),  # their weighted term frequencies (what kb_score reads)
    Column("level", SmallInteger, nullable=False),  # keyword level: the least reader that may see it (keyword.py)
)

term_stats = Table(  # in how many chunks of each keyword level each lexeme occurs (BM25's document frequency)
    "term_stats", metadata,
    Column("term", Text, primary_key=True),
    Column("level", SmallInteger, primary_key=True),
    Column("df", Integer, nullable=False),
)

term_postings = Table(  # each lexeme's chunks by BM25 impact, best first (keyword.search_postgres)
    "term_postings", metadata,
    Column("term", Text, primary_key=True),
    Column("impact", REAL, primary_key=True),  # BM25's term-frequency part at meta's keyword_ref_avgdl
    Column("chunk_id", Integer, primary_key=True, autoincrement=False),
)

chunk_vectors = Table(
    "chunk_vectors", metadata,
    Column("chunk_id", Integer, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("model", Text, nullable=False),
    Column("embedding", Vector(), nullable=False),
)

files = Table(  # the originals of documents, so that any web node can serve a download
    "files", metadata,
    Column("path", Text, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
)
