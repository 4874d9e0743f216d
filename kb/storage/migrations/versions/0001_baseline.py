"""The schema as of SQLite migration 6, for both databases.

SQLite: the numbered migrations in kb/storage/sqlite_migrations.py made it (data folders from
before Alembic keep their history), so there is nothing to do here. PostgreSQL: the same tables
written out, plus what only PostgreSQL keeps: the keyword index (`chunk_search`, a weighted
tsvector per chunk with a GIN index), the vectors (`chunk_vectors`, pgvector) and the stored
originals (`files`), so that a web node needs no data folder.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    text, integer, real = sa.Text(), sa.Integer(), sa.Float()
    op.create_table(
        "documents",
        sa.Column("id", integer, sa.Identity(), primary_key=True),
        sa.Column("source", text, nullable=False, unique=True),
        sa.Column("sha256", text, nullable=False),
        sa.Column("title", text, nullable=False, server_default=""),
        sa.Column("doc_type", text), sa.Column("site", text), sa.Column("partnership", text),
        sa.Column("published", text),
        sa.Column("tags", text, nullable=False, server_default="[]"),
        sa.Column("visibility", text, nullable=False, server_default="public"),
        sa.Column("status", text, nullable=False, server_default="active"),
        sa.Column("added_at", text, nullable=False), sa.Column("updated_at", text, nullable=False),
        sa.Column("original_name", text), sa.Column("mime", text), sa.Column("stored_path", text),
        sa.Column("source_publication", text), sa.Column("original_title", text),
        sa.Column("body", text, nullable=False, server_default=""),
        sa.Column("signature", sa.LargeBinary()),
        sa.Column("dup_of", integer, sa.ForeignKey("documents.id", ondelete="SET NULL")),
        sa.Column("dup_score", real),
        sa.Column("edited", text, nullable=False, server_default="[]"),
        sa.Column("source_sha", text),
        sa.CheckConstraint("visibility IN ('public', 'partners', 'curators')", name="documents_visibility"),
        sa.CheckConstraint("status IN ('active', 'retired')", name="documents_status"),
    )
    for name, column in (("documents_sha", "sha256"), ("documents_site", "site"), ("documents_type", "doc_type"),
                         ("documents_source_sha", "source_sha"), ("documents_stored_path", "stored_path"),
                         ("documents_dup_of", "dup_of")):
        op.create_index(name, "documents", [column])
    op.create_table(
        "chunks",
        sa.Column("id", integer, sa.Identity(), primary_key=True),
        sa.Column("doc_id", integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", integer, nullable=False),
        sa.Column("text", text, nullable=False),
        sa.Column("heading", text, nullable=False, server_default=""),
        sa.Column("page", integer),
        sa.Column("char_start", integer, nullable=False), sa.Column("char_end", integer, nullable=False),
        sa.Column("tokens", integer, nullable=False),
        sa.Column("text_hash", text, nullable=False),
        sa.UniqueConstraint("doc_id", "ordinal"),
    )
    op.create_index("chunks_hash", "chunks", ["text_hash"])
    op.create_table(
        "embeddings",
        sa.Column("model", text, primary_key=True), sa.Column("text_hash", text, primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_index("embeddings_hash", "embeddings", ["text_hash"])
    op.create_table(
        "doc_bands",
        sa.Column("band", text, primary_key=True),
        sa.Column("doc_id", integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("doc_bands_doc", "doc_bands", ["doc_id"])
    op.create_table("meta", sa.Column("key", text, primary_key=True), sa.Column("value", text, nullable=False))
    op.execute("INSERT INTO meta (key, value) VALUES ('generation', '0'), ('revision', '0'), "
               "('themes_generation', '-1'), ('themes_built', '0')")
    op.create_table(
        "users",
        sa.Column("id", integer, sa.Identity(), primary_key=True),
        sa.Column("name", text, nullable=False),
        sa.Column("role", text, nullable=False),
        sa.Column("password_hash", text, nullable=False),
        sa.Column("created_at", text, nullable=False),
        sa.CheckConstraint("role IN ('curator', 'partner')", name="users_role"),
    )
    op.execute("CREATE UNIQUE INDEX users_name ON users (lower(name))")  # names are unique regardless of case
    op.create_table(
        "login_failures",
        sa.Column("key", text, primary_key=True),
        sa.Column("failures", integer, nullable=False),
        sa.Column("last_at", real, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", integer, sa.Identity(), primary_key=True),
        sa.Column("at", text, nullable=False), sa.Column("actor", text, nullable=False),
        sa.Column("action", text, nullable=False),
        sa.Column("target", text, nullable=False, server_default=""),
        sa.Column("detail", text, nullable=False, server_default=""),
    )
    op.create_index("audit_at", "audit", ["at"])
    op.create_table(
        "jobs",
        sa.Column("id", integer, sa.Identity(), primary_key=True),
        sa.Column("kind", text, nullable=False, server_default="upload"),
        sa.Column("created_by", text, nullable=False),
        sa.Column("original_name", text, nullable=False, server_default=""),
        sa.Column("upload_path", text),
        sa.Column("meta", text, nullable=False, server_default="{}"),
        sa.Column("status", text, nullable=False),
        sa.Column("progress", integer, nullable=False, server_default="0"),
        sa.Column("message", text, nullable=False, server_default=""),
        sa.Column("doc_id", integer), sa.Column("duplicate_of", integer),
        sa.Column("created_at", text, nullable=False), sa.Column("updated_at", text, nullable=False),
        sa.Column("owner", text),
    )
    op.create_index("jobs_status", "jobs", ["status"])
    op.create_table(
        "themes",
        sa.Column("id", integer, primary_key=True, autoincrement=False),
        sa.Column("label", text, nullable=False), sa.Column("terms", text, nullable=False),
        sa.Column("size", integer, nullable=False),
    )
    op.create_table(
        "chunk_themes",
        sa.Column("chunk_id", integer, sa.ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("theme_id", integer, sa.ForeignKey("themes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("score", real, nullable=False),
    )
    op.create_index("chunk_themes_theme", "chunk_themes", ["theme_id"])
    op.create_table(
        "sessions",
        sa.Column("token_hash", text, primary_key=True),
        sa.Column("user_id", integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", real, nullable=False),
    )
    op.create_index("sessions_user", "sessions", ["user_id"])
    # what only PostgreSQL keeps ------------------------------------------------------------
    op.execute("""
        CREATE TABLE chunk_search (
            chunk_id integer PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            terms tsvector NOT NULL
        )""")
    op.execute("CREATE INDEX chunk_search_terms ON chunk_search USING gin (terms)")
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("""
        CREATE TABLE chunk_vectors (
            chunk_id integer PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            model text NOT NULL,
            embedding vector NOT NULL
        )""")
    op.execute("""
        CREATE TABLE files (
            path text PRIMARY KEY,
            data bytea NOT NULL,
            size bigint NOT NULL,
            sha256 text NOT NULL
        )""")
