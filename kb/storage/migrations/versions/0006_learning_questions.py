"""Learning questions and what gathers around them: curators' judgements of passages, users'
follows (of a question or a saved search) with per-user feed tokens, and search analytics
(queries, opened results, feedback) kept without who searched.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text, integer, real = sa.Text(), sa.Integer(), sa.Float()
    identity = () if op.get_bind().dialect.name == "sqlite" else (sa.Identity(),)
    op.create_table(
        "questions",
        sa.Column("id", integer, *identity, primary_key=True),
        sa.Column("text", text, nullable=False),
        sa.Column("description", text, nullable=False, server_default=""),
        sa.Column("filters", text, nullable=False, server_default="{}"),  # JSON: site, type lists, from, to
        sa.Column("status", text, nullable=False, server_default="active"),  # active or archived
        sa.Column("created_by", text, nullable=False),
        sa.Column("created_at", text, nullable=False),
        sa.Column("updated_at", text, nullable=False),
        sa.Column("reviewed_at", text),  # when a curator last reviewed its evidence: newer passages are "new"
    )
    op.create_table(
        "judgements",  # a passage judged for a question, by its document and text (ids change on re-ingest)
        sa.Column("question_id", integer, sa.ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("doc_id", integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("text_hash", text, primary_key=True),
        sa.Column("chunk_id", integer, nullable=False),  # the passage when judged
        sa.Column("verdict", text, nullable=False),  # evidence or not_evidence
        sa.Column("source", text, nullable=False, server_default="curator"),  # curator or feedback
        sa.Column("by", text, nullable=False),
        sa.Column("at", text, nullable=False),
    )
    op.create_index("judgements_doc", "judgements", ["doc_id"])
    op.create_table(
        "follows",  # a user's follow of a question, or of a saved search (query and filters)
        sa.Column("id", integer, *identity, primary_key=True),
        sa.Column("user_id", integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question_id", integer, sa.ForeignKey("questions.id", ondelete="CASCADE")),
        sa.Column("query", text, nullable=False, server_default=""),
        sa.Column("filters", text, nullable=False, server_default="{}"),
        sa.Column("created_at", text, nullable=False),
        sa.Column("seen_at", text, nullable=False),  # the user's last look: later passages count as new
        # the store's change count (generation + revision) at that look: a document updated within
        # seen_at's second (timestamps keep whole seconds) is new only if the count has moved since
        sa.Column("seen_mark", integer, nullable=False, server_default="0"),
    )
    op.create_index("follows_user", "follows", ["user_id"])
    op.create_table(
        "feed_tokens",  # one secret per user for feed URLs; only its hash is kept, a new one revokes the old
        sa.Column("user_id", integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("token_hash", text, nullable=False, unique=True),
        sa.Column("created_at", text, nullable=False),
    )
    op.create_table(
        "search_log",  # what was searched, never by whom
        sa.Column("id", integer, *identity, primary_key=True),
        sa.Column("day", text, nullable=False),  # YYYY-MM-DD
        sa.Column("query", text, nullable=False),  # normalized
        sa.Column("mode", text, nullable=False),
        sa.Column("results", integer, nullable=False),  # matching documents
        sa.Column("best", real),  # best similarity, when the mode had one
    )
    op.create_index("search_log_day", "search_log", ["day"])
    op.create_table(
        "result_opens",  # a result opened from a search, never by whom
        sa.Column("id", integer, *identity, primary_key=True),
        sa.Column("day", text, nullable=False),
        sa.Column("query", text, nullable=False),
        sa.Column("doc_id", integer, nullable=False),
        sa.Column("chunk_id", integer),
    )
    op.create_index("result_opens_day", "result_opens", ["day"])
    op.create_table(
        "feedback",  # a signed-in user's helpful / not helpful on a result, never by whom
        sa.Column("id", integer, *identity, primary_key=True),
        sa.Column("day", text, nullable=False),
        sa.Column("query", text, nullable=False),
        sa.Column("doc_id", integer, nullable=False),
        sa.Column("chunk_id", integer, nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("question_id", integer, sa.ForeignKey("questions.id", ondelete="SET NULL")),
    )
    op.create_index("feedback_day", "feedback", ["day"])
