"""Search filters as SQL conditions on the documents table. Pure: builds expressions, runs nothing.

Visibility is one of the filters, so every query that lists, counts or ranks passages applies it
inside the database, never after.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, and_, exists, false, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy import Text, cast

from ..models import Filters
from .schema import documents


def conditions(filters: Filters, d: Table = documents, dialect: str = "sqlite",
               include_retired: bool = False) -> ColumnElement[bool]:
    """Every condition of `filters` on `d` (the documents table or an alias of it), ANDed."""
    where = [] if include_retired else [d.c.status == "active"]
    where.append(d.c.visibility.in_(list(filters.visibility)) if filters.visibility else false())
    if filters.site:
        where.append(d.c.site.in_(filters.site))
    if filters.doc_type:
        where.append(d.c.doc_type.in_(filters.doc_type))
    if filters.year:
        where.append(func.substr(d.c.published, 1, 4).in_([f"{int(y):04d}" for y in filters.year]))
    if filters.tag:
        where.append(has_any_tag(d, list(filters.tag), dialect))
    if filters.date_from:
        where.append(d.c.published >= filters.date_from)
    if filters.date_to:
        where.append(d.c.published <= filters.date_to + "\uffff")
    if filters.doc_ids is not None:
        where.append(d.c.id.in_(list(filters.doc_ids)) if filters.doc_ids else false())
    return and_(true(), *where)


def has_any_tag(d: Table, tags: list[str], dialect: str) -> ColumnElement[bool]:
    """The document's JSON list of tags holds at least one of these."""
    if dialect == "postgresql":
        return cast(d.c.tags, JSONB).op("?|")(cast(tags, ARRAY(Text)))
    each = func.json_each(d.c.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value.in_(tags)))


def tag_values(d: Table, dialect: str):
    """A table-valued expression with one row per tag of each document (column `value`)."""
    if dialect == "postgresql":
        return func.jsonb_array_elements_text(cast(d.c.tags, JSONB)).table_valued("value")
    return func.json_each(d.c.tags).table_valued("value")
