"""What a loader noted while reading a document's file (`documents.warnings`, a JSON list of
sentences), shown on its page: text read from a scan by OCR, parts left out, and the like.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE documents ADD COLUMN warnings text NOT NULL DEFAULT '[]'")
