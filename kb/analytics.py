"""Search analytics for curators: what is searched, what finds nothing, what gets opened, and
readers' feedback on results. Kept by day and never with who asked.

Searches and opens are queued and written by a background thread, a second's worth in one
transaction, so a search never waits for the database's write lock (on SQLite an ingest holds it
for a whole batch); feedback, a deliberate act, is written at once. Rows older than the retention period are deleted at most once a day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from .errors import BadRequest
from .models import SearchResult
from .query import normalize
from .search import RELEVANCE_FLOOR
from .storage import Store
from .storage.analytics import DayCount, FeedbackCount, FeedbackRecord, OpenCount, OpenRecord, SearchRecord

log = logging.getLogger(__name__)

TOP_PER_WEEK = 20  # queries listed for each week
TOP_GAPS = 50  # queries that found nothing or only weak matches
OPENED_PER_QUERY = 5  # documents listed under a query
QUEUE_LIMIT = 10_000  # rows waiting to be written; beyond it new ones are dropped (the database is stuck)
IDLE_SECONDS = 30.0  # the writer thread ends after this long without work, and starts again with the next row
# the writer lets rows gather this long (or this many) and writes them in one transaction: a commit
# per search cost PostgreSQL searches 5 ms at their p50 on a busy 2-core machine (bench/analytics.py)
GATHER_SECONDS = 1.0
GATHER_ROWS = 500


def today() -> date:
    return datetime.now(timezone.utc).date()


def query_key(text: str) -> str:
    """How a query is counted: normalized as search reads it, then lower-cased."""
    return normalize(text).lower()


def iso_week(day: str) -> str:
    """"2025-W07" for a YYYY-MM-DD day."""
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Opened:
    doc_id: int
    title: str | None
    opens: int


@dataclass
class Marked:
    """Readers' marks on one passage found by a query."""

    doc_id: int
    chunk_id: int
    title: str | None
    ordinal: int | None
    helpful: int
    not_helpful: int


@dataclass
class QueryStats:
    """One query over a period: searches (those that matched nothing, those that matched only
    weakly), the day last searched, the documents opened from it and the feedback on its results."""

    query: str
    searches: int = 0
    nothing: int = 0
    weak: int = 0
    last: str | None = None
    opened: list[Opened] = field(default_factory=list)
    marks: list[Marked] = field(default_factory=list)

    @property
    def helpful(self) -> int:
        return sum(m.helpful for m in self.marks)

    @property
    def not_helpful(self) -> int:
        return sum(m.not_helpful for m in self.marks)

    @property
    def opens(self) -> int:
        return sum(o.opens for o in self.opened)

    def to_dict(self) -> dict:
        return {**asdict(self), "opens": self.opens, "helpful": self.helpful, "not_helpful": self.not_helpful}


@dataclass
class Week:
    week: str  # ISO week, 2025-W07
    starts: str  # its Monday
    searches: int
    queries: list[QueryStats]  # the most searched first

    def to_dict(self) -> dict:
        return {"week": self.week, "starts": self.starts, "searches": self.searches,
                "queries": [q.to_dict() for q in self.queries]}


@dataclass
class Report:
    days: int
    since: str
    until: str
    searches: int
    distinct: int  # different queries searched
    weeks: list[Week]  # newest first
    gaps: list[QueryStats]  # queries that found nothing or only weak matches, most often first
    queries: list[QueryStats]  # every query searched, opened from or marked, most searched first

    def to_dict(self) -> dict:
        return {"days": self.days, "since": self.since, "until": self.until, "searches": self.searches,
                "distinct_queries": self.distinct, "weak_below": RELEVANCE_FLOOR,
                "weeks": [w.to_dict() for w in self.weeks], "gaps": [q.to_dict() for q in self.gaps],
                "queries": [q.to_dict() for q in self.queries]}


def build_report(days: int, since: str, until: str, daily: list[DayCount], opens: list[OpenCount],
                 marks: list[FeedbackCount]) -> Report:
    """The report from per-day counts (pure): weekly top queries, gaps, and per query its opened
    documents and feedback."""
    weeks: dict[str, list] = {}
    for row in daily:
        weeks.setdefault(iso_week(row.day), [[], [], []])[0].append(row)
    for row in opens:
        weeks.setdefault(iso_week(row.day), [[], [], []])[1].append(row)
    for row in marks:
        weeks.setdefault(iso_week(row.day), [[], [], []])[2].append(row)
    out = []
    for week in sorted(weeks, reverse=True):
        stats = _per_query(*weeks[week])
        year, number = week.split("-W")
        monday = date.fromisocalendar(int(year), int(number), 1).isoformat()
        out.append(Week(week, monday, sum(s.searches for s in stats), stats[:TOP_PER_WEEK]))
    overall = _per_query(daily, opens, marks)
    gaps = sorted((s for s in overall if s.nothing or s.weak), key=lambda s: (-(s.nothing + s.weak), s.query))
    return Report(days=days, since=since, until=until, searches=sum(s.searches for s in overall),
                  distinct=sum(1 for s in overall if s.searches), weeks=out, gaps=gaps[:TOP_GAPS], queries=overall)


def _per_query(daily: list[DayCount], opens: list[OpenCount], marks: list[FeedbackCount]) -> list[QueryStats]:
    stats: dict[str, QueryStats] = {}
    for row in daily:
        s = stats.setdefault(row.query, QueryStats(row.query))
        s.searches += row.searches
        s.nothing += row.nothing
        s.weak += row.weak
        s.last = max(s.last or row.day, row.day)
    opened: dict[tuple[str, int], Opened] = {}
    for row in opens:
        entry = opened.setdefault((row.query, row.doc_id), Opened(row.doc_id, row.title, 0))
        entry.opens += row.opens
    for (text, _), entry in opened.items():
        stats.setdefault(text, QueryStats(text)).opened.append(entry)
    marked: dict[tuple[str, int], Marked] = {}
    for row in marks:
        entry = marked.setdefault((row.query, row.chunk_id), Marked(row.doc_id, row.chunk_id, row.title, row.ordinal, 0, 0))
        entry.helpful += row.helpful
        entry.not_helpful += row.not_helpful
    for (text, _), entry in marked.items():
        stats.setdefault(text, QueryStats(text)).marks.append(entry)
    for s in stats.values():
        s.opened = sorted(s.opened, key=lambda o: (-o.opens, o.doc_id))[:OPENED_PER_QUERY]
        s.marks.sort(key=lambda m: (-(m.helpful + m.not_helpful), m.chunk_id))
    return sorted(stats.values(), key=lambda s: (-s.searches, -s.opens, s.query))


class Analytics:
    """Records searches, opened results and feedback (when `enabled`), and reports on them."""

    def __init__(self, store: Store, enabled: bool = True, keep_days: int = 180,
                 clock: Callable[[], date] = today):
        self.store = store
        self.enabled = enabled
        self.keep_days = keep_days
        self.clock = clock
        self.dropped = 0  # rows not recorded because the queue was full
        self._pending: deque = deque()
        self._writing = False
        self._waiting = False  # the writer waits for work (not while it lets rows gather)
        self._hurry = 0  # callers of flush() waiting: the writer writes what it has at once
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._pruned_on: date | None = None

    # recording -------------------------------------------------------------------------------

    def searched(self, result: SearchResult) -> None:
        """A web search's result: its query, mode, how many documents matched and how close the
        best passage came. Queued; costs a few microseconds."""
        if self.enabled:
            self._queue(SearchRecord(self.clock().isoformat(), query_key(result.query), result.mode,
                                     result.documents, result.best_similarity))

    def opened(self, query: str, doc_id: int, chunk_id: int | None) -> None:
        """A result opened from a search (a document the reader may see). Queued."""
        key = query_key(query)
        if self.enabled and key:
            self._queue(OpenRecord(self.clock().isoformat(), key, doc_id, chunk_id))

    def feedback(self, query: str, doc_id: int, chunk_id: int, helpful: bool, question_id: int | None = None) -> bool:
        """A reader's helpful / not helpful mark on a passage they may see, written now; False when
        analytics are off or the query is empty."""
        key = query_key(query)
        if not self.enabled or not key:
            return False
        self._prune_daily()
        self.store.analytics.add(marks=[FeedbackRecord(self.clock().isoformat(), key, doc_id, chunk_id,
                                                       bool(helpful), question_id)])
        return True

    def _queue(self, row) -> None:
        with self._cond:
            if len(self._pending) >= QUEUE_LIMIT:
                self.dropped += 1
                return
            self._pending.append(row)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_loop, name="kb-analytics", daemon=True)
                self._thread.start()
            elif self._waiting or len(self._pending) >= GATHER_ROWS:
                self._cond.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._waiting = True
                    self._cond.wait(IDLE_SECONDS)
                    self._waiting = False
                if not self._pending:
                    self._thread = None
                    self._cond.notify_all()
                    return
                deadline = time.monotonic() + GATHER_SECONDS
                while not self._hurry and len(self._pending) < GATHER_ROWS and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
                batch = list(self._pending)
                self._pending.clear()
                self._writing = True
            try:
                self._prune_daily()
                self.store.analytics.add(searches=[r for r in batch if isinstance(r, SearchRecord)],
                                         opens=[r for r in batch if isinstance(r, OpenRecord)])
            except Exception:  # analytics must never take searching down with them
                log.exception("search analytics: %d rows not recorded", len(batch))
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is written (or `timeout` seconds pass); whether it was."""
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._pending and not self._writing, timeout)
            finally:
                self._hurry -= 1

    def _prune_daily(self) -> None:
        day = self.clock()
        if self._pruned_on != day:
            self._pruned_on = day
            self.store.analytics.prune((day - timedelta(days=self.keep_days - 1)).isoformat())

    # reporting -------------------------------------------------------------------------------

    def report(self, days: int | None = None) -> Report:
        """The last `days` days (at most the retention period), today included. What this process
        has queued is written first, and rows past the retention period are deleted."""
        if days is not None and days < 1:
            raise BadRequest(f"days must be at least 1, not {days}")
        days = min(days or self.keep_days, self.keep_days)
        self.flush()
        self._prune_daily()
        until = self.clock()
        since = (until - timedelta(days=days - 1)).isoformat()
        rows = self.store.analytics
        return build_report(days, since, until.isoformat(), rows.daily(since, RELEVANCE_FLOOR), rows.opens(since),
                            rows.feedback(since))
