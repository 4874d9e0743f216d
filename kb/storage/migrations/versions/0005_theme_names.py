"""Curators' names for themes: `themes.name`, and `themes.centroid` (float32 little-endian), by
which a rebuild finds the theme a name belongs to.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    blob = "BLOB" if op.get_bind().dialect.name == "sqlite" else "bytea"
    op.execute("ALTER TABLE themes ADD COLUMN name text")
    op.execute(f"ALTER TABLE themes ADD COLUMN centroid {blob}")
