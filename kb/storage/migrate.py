"""Bring a database's schema up to date: SQLite's numbered migrations of old, then Alembic's.

Alembic (imported only when a database is behind) runs on a connection kb opens, inside one write
transaction, so two processes opening a new database at once take turns: SQLite's write lock, or
a PostgreSQL advisory lock.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, text

from .database import Database

SCRIPTS = Path(__file__).parent / "migrations"
HEAD = "0007"  # the newest revision in migrations/versions (tests/test_storage.py checks it)
LOCK_KEY = 0x6B62_6D69  # "kbmi": the advisory lock PostgreSQL migrations take


def upgrade(db: Database) -> None:
    with db.transaction(bump=None) as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        if current(conn) == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def own_schema(conn: Connection) -> str | None:
    """PostgreSQL: the schema new tables go in (the first on the search path), whose version counts;
    a `kb eval` schema searches `public` after its own, where the collection's tables would
    otherwise pass for its own."""
    return conn.execute(text("SELECT current_schema()")).scalar() if conn.dialect.name == "postgresql" else None


def current(conn: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first)."""
    schema = own_schema(conn)
    if not inspect(conn).has_table("alembic_version", schema=schema):
        return None
    table = f'"{schema}".alembic_version' if schema else "alembic_version"
    return conn.execute(text(f"SELECT version_num FROM {table}")).scalar()
