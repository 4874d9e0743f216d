"""Queries for themes: the passages they are built from, the stored themes and what a reader sees."""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
from sqlalchemy import delete, distinct, func, insert, literal, select, update

from ..models import Filters
from .database import Database
from .filters import conditions
from .schema import chunk_themes, chunks, documents, themes


class ThemeInput(NamedTuple):
    """An active passage, as the clustering and the labels read it."""

    id: int
    doc_id: int
    text: str
    heading: str


class ThemeText(NamedTuple):
    """An assigned passage a reader may see, as their theme labels read it."""

    theme_id: int
    doc_id: int
    heading: str
    text: str


class NewTheme(NamedTuple):
    id: int
    label: str
    terms: list[str]
    size: int
    name: str | None
    centroid: np.ndarray


class NamedTheme(NamedTuple):
    """A theme a curator named, with its centre (None from before centres were kept)."""

    id: int
    name: str
    centroid: np.ndarray | None


class ThemeCount(NamedTuple):
    id: int
    name: str | None
    passages: int
    documents: int


class ThemePassage(NamedTuple):
    id: int
    doc_id: int
    ordinal: int
    text: str
    heading: str
    page: int | None
    title: str
    site: str | None
    doc_type: str | None
    published: str | None


class ThemeDocument(NamedTuple):
    id: int
    title: str
    site: str | None
    doc_type: str | None
    published: str | None
    passages: int


def _visible(visibility):
    """Theme assignments joined to their passages and documents, limited to what a reader may see."""
    return (chunk_themes.join(chunks, chunks.c.id == chunk_themes.c.chunk_id)
            .join(documents, documents.c.id == chunks.c.doc_id)), conditions(Filters(visibility=tuple(visibility)))


class ThemeRows:
    def __init__(self, db: Database):
        self.db = db

    def active_passages(self) -> list[ThemeInput]:
        query = (select(chunks.c.id, chunks.c.doc_id, chunks.c.text, chunks.c.heading)
                 .join_from(chunks, documents, documents.c.id == chunks.c.doc_id)
                 .where(documents.c.status == "active").order_by(chunks.c.id))
        with self.db.read() as conn:
            return [ThemeInput(*r) for r in conn.execute(query)]

    def replace(self, found: list[NewTheme], assignments: dict[int, tuple[int, float]], generation: int) -> None:
        """Store these themes and passage assignments instead of the old, recording the store
        generation they were built from."""
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(chunk_themes))
            conn.execute(delete(themes))
            if found:
                conn.execute(insert(themes), [
                    {"id": t.id, "label": t.label, "terms": json.dumps(t.terms), "size": t.size, "name": t.name,
                     "centroid": np.asarray(t.centroid, dtype="<f4").tobytes()} for t in found])
            if assignments:
                conn.execute(insert(chunk_themes), [{"chunk_id": c, "theme_id": t, "score": s}
                                                    for c, (t, s) in assignments.items()])
            self.db.set_counter(conn, "themes_generation", generation)
            self.db.set_counter(conn, "themes_built", (self.db.counter("themes_built", conn) or 0) + 1)

    def named(self) -> list[NamedTheme]:
        query = select(themes.c.id, themes.c.name, themes.c.centroid).where(themes.c.name.is_not(None))
        with self.db.read() as conn:
            return [NamedTheme(i, name, None if blob is None else np.frombuffer(blob, dtype="<f4"))
                    for i, name, blob in conn.execute(query.order_by(themes.c.id))]

    def rename(self, theme_id: int, name: str | None) -> bool:
        """Set (or with None clear) a theme's curator name; False when there is no such theme."""
        with self.db.transaction(bump=None) as conn:
            return conn.execute(update(themes).where(themes.c.id == theme_id).values(name=name)).rowcount == 1

    def exist(self) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(themes.c.id).limit(1)).first() is not None

    def generation(self) -> int | None:
        """The store generation the themes were built from."""
        return self.db.counter("themes_generation")

    def built(self) -> int | None:
        """How many times themes were built (a cache key)."""
        return self.db.counter("themes_built")

    def texts(self, visibility) -> list[ThemeText]:
        """Every assigned passage the reader may see, in a stable order."""
        joined, where = _visible(visibility)
        query = (select(chunk_themes.c.theme_id, chunks.c.doc_id, chunks.c.heading, chunks.c.text)
                 .select_from(joined).where(where).order_by(chunks.c.id))
        with self.db.read() as conn:
            return [ThemeText(*r) for r in conn.execute(query)]

    def counts(self, visibility) -> list[ThemeCount]:
        joined, where = _visible(visibility)
        passages = func.count().label("passages")
        query = (select(themes.c.id, themes.c.name, passages, func.count(distinct(documents.c.id)).label("documents"))
                 .select_from(themes.join(joined, chunk_themes.c.theme_id == themes.c.id)).where(where)
                 .group_by(themes.c.id, themes.c.name).order_by(passages.desc(), themes.c.id))
        with self.db.read() as conn:
            return [ThemeCount(*r) for r in conn.execute(query)]

    def site_counts(self, visibility, no_site: str) -> list[tuple[int, str, int]]:
        joined, where = _visible(visibility)
        query = (select(chunk_themes.c.theme_id, func.coalesce(documents.c.site, literal(no_site)), func.count())
                 .select_from(joined).where(where).group_by(chunk_themes.c.theme_id, documents.c.site))
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def passages(self, theme_id: int, visibility, limit: int) -> list[ThemePassage]:
        """The passages nearest the theme's centre, among those the reader may see."""
        joined, where = _visible(visibility)
        query = (select(chunks.c.id, chunks.c.doc_id, chunks.c.ordinal, chunks.c.text, chunks.c.heading, chunks.c.page,
                        documents.c.title, documents.c.site, documents.c.doc_type, documents.c.published)
                 .select_from(joined).where(chunk_themes.c.theme_id == theme_id, where)
                 .order_by(chunk_themes.c.score.desc()).limit(limit))
        with self.db.read() as conn:
            return [ThemePassage(*r) for r in conn.execute(query)]

    def documents(self, theme_id: int, visibility) -> list[ThemeDocument]:
        joined, where = _visible(visibility)
        passages = func.count().label("passages")
        query = (select(documents.c.id, documents.c.title, documents.c.site, documents.c.doc_type,
                        documents.c.published, passages)
                 .select_from(joined).where(chunk_themes.c.theme_id == theme_id, where)
                 .group_by(documents.c.id).order_by(passages.desc(), documents.c.title))
        with self.db.read() as conn:
            return [ThemeDocument(*r) for r in conn.execute(query)]
