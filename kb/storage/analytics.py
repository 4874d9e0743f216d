"""Queries for search analytics: searches, opened results and feedback, by day, never by whom."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import case, delete, func, insert, select

from .database import Database
from .schema import chunks, documents, feedback, result_opens, search_log


class SearchRecord(NamedTuple):
    day: str  # YYYY-MM-DD (UTC)
    query: str  # normalized, lower-cased
    mode: str
    results: int  # matching documents
    best: float | None  # best similarity in meaning, when the mode has one


class OpenRecord(NamedTuple):
    day: str
    query: str
    doc_id: int
    chunk_id: int | None


class FeedbackRecord(NamedTuple):
    day: str
    query: str
    doc_id: int
    chunk_id: int
    helpful: bool
    question_id: int | None


class DayCount(NamedTuple):
    """One query's searches on one day: how many, how many matched nothing, how many only weakly."""

    day: str
    query: str
    searches: int
    nothing: int
    weak: int


class OpenCount(NamedTuple):
    """A document opened from a query's results on one day, and how often."""

    day: str
    query: str
    doc_id: int
    title: str | None  # None: the document has been deleted since
    opens: int


class FeedbackCount(NamedTuple):
    """Marks on a passage found by a query on one day."""

    day: str
    query: str
    doc_id: int
    chunk_id: int
    title: str | None
    ordinal: int | None  # the passage's place in its document, None once re-ingested or deleted
    helpful: int
    not_helpful: int


class AnalyticsRows:
    def __init__(self, db: Database):
        self.db = db

    def add(self, searches: list[SearchRecord] = (), opens: list[OpenRecord] = (),
            marks: list[FeedbackRecord] = ()) -> None:
        """Append rows in one transaction. Appends cannot conflict, so PostgreSQL takes no writer
        lock: a long ingest never holds them up there."""
        with self.db.transaction(bump=None, lock=False) as conn:
            for table, rows in ((search_log, searches), (result_opens, opens), (feedback, marks)):
                if rows:
                    conn.execute(insert(table), [row._asdict() for row in rows])

    def prune(self, before: str) -> int:
        """Delete every row from a day before `before` (YYYY-MM-DD); how many went."""
        with self.db.transaction(bump=None, lock=False) as conn:
            return sum(conn.execute(delete(table).where(table.c.day < before)).rowcount
                       for table in (search_log, result_opens, feedback))

    def daily(self, since: str, weak_below: float) -> list[DayCount]:
        """Searches per day and query from `since` on; weak: something matched, but the best
        passage's similarity was under `weak_below`."""
        weak = (search_log.c.results > 0) & (search_log.c.best < weak_below)
        query = (select(search_log.c.day, search_log.c.query, func.count(),
                        func.sum(case((search_log.c.results == 0, 1), else_=0)),
                        func.sum(case((weak, 1), else_=0)))
                 .where(search_log.c.day >= since)
                 .group_by(search_log.c.day, search_log.c.query)
                 .order_by(search_log.c.day, search_log.c.query))
        with self.db.read() as conn:
            return [DayCount(day, text, int(n), int(nothing), int(weak)) for day, text, n, nothing, weak in conn.execute(query)]

    def opens(self, since: str) -> list[OpenCount]:
        """Opened results per day, query and document from `since` on."""
        query = (select(result_opens.c.day, result_opens.c.query, result_opens.c.doc_id, documents.c.title, func.count())
                 .join_from(result_opens, documents, documents.c.id == result_opens.c.doc_id, isouter=True)
                 .where(result_opens.c.day >= since)
                 .group_by(result_opens.c.day, result_opens.c.query, result_opens.c.doc_id, documents.c.title)
                 .order_by(result_opens.c.day, result_opens.c.query, result_opens.c.doc_id))
        with self.db.read() as conn:
            return [OpenCount(day, text, doc_id, title, int(n)) for day, text, doc_id, title, n in conn.execute(query)]

    def feedback(self, since: str) -> list[FeedbackCount]:
        """Helpful and not-helpful marks per day, query and passage from `since` on."""
        query = (select(feedback.c.day, feedback.c.query, feedback.c.doc_id, feedback.c.chunk_id, documents.c.title,
                        chunks.c.ordinal, func.sum(case((feedback.c.helpful, 1), else_=0)), func.count())
                 .join_from(feedback, documents, documents.c.id == feedback.c.doc_id, isouter=True)
                 .join(chunks, (chunks.c.id == feedback.c.chunk_id) & (chunks.c.doc_id == feedback.c.doc_id),
                       isouter=True)
                 .where(feedback.c.day >= since)
                 .group_by(feedback.c.day, feedback.c.query, feedback.c.doc_id, feedback.c.chunk_id,
                           documents.c.title, chunks.c.ordinal)
                 .order_by(feedback.c.day, feedback.c.query, feedback.c.chunk_id))
        with self.db.read() as conn:
            return [FeedbackCount(day, text, doc_id, chunk_id, title, ordinal, int(yes), int(n) - int(yes))
                    for day, text, doc_id, chunk_id, title, ordinal, yes, n in conn.execute(query)]
