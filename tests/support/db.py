"""Tests look straight into the database with this: plain SQL through the store's own engine."""

from __future__ import annotations


def rows(store, query: str, *params) -> list[tuple]:
    """Every row of a query (SQLite's `?` placeholders) as plain tuples."""
    with store.db.read() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(query, tuple(params)).all()]


def run(store, query: str, *params) -> None:
    """A statement in its own write transaction."""
    with store.db.transaction(bump=None) as conn:
        conn.exec_driver_sql(query, tuple(params))
