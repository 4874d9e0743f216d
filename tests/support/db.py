"""Tests look straight into the database with this: plain SQL through the store's own engine."""

from __future__ import annotations


def _driver_sql(store, query: str) -> str:
    """`?` placeholders as the driver wants them (psycopg: %s, with a literal % doubled)."""
    if store.dialect == "postgresql":
        return query.replace("%", "%%").replace("?", "%s")
    return query


def rows(store, query: str, *params) -> list[tuple]:
    """Every row of a query (`?` placeholders) as plain tuples, on either backend."""
    with store.db.read() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(_driver_sql(store, query), tuple(params)).all()]


def run(store, query: str, *params) -> None:
    """A statement in its own write transaction."""
    with store.db.transaction(bump=None) as conn:
        conn.exec_driver_sql(_driver_sql(store, query), tuple(params))
