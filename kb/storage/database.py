"""The connection to the database: an SQLAlchemy engine, read connections and write transactions.

SQLite: one file in WAL mode, so readers never wait for a writer; a write transaction starts with
`BEGIN IMMEDIATE` (it takes the write lock at once instead of failing on upgrade), and reads run
outside any transaction, each statement on its own, as sqlite3's autocommit mode does.
"""

from __future__ import annotations

import contextvars
import os
from collections import deque
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import (Connection, Engine, Integer, Text, bindparam, cast, create_engine, event, select, text,
                        update)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

import psycopg
from psycopg.types.string import StrDumperUnknown

from ..errors import Busy, DatabaseUnavailable
from . import private
from .schema import meta

MMAP_BYTES = 1 << 30  # at most this much of the database file is mapped (SQLite maps what the file holds)
POOL_SIZE = 16  # connections kept: waitress's request threads, the upload worker, a few spare
COUNTERS = ("generation", "revision")
# PostgreSQL: every write transaction takes this lock first. Writes then queue as SQLite's do: no
# deadlock between an ingest and a curator's edit touching the same rows in another order, and no
# lost update where a transaction reads and writes back (a document's edited fields, counters).
WRITE_LOCK = 0x6B62_7478  # "kbtx"
# built once: a search reads the counters several times, and building a statement costs more than running it
COUNTER = select(meta.c.value).where(meta.c.key == bindparam("key"))
BOTH_COUNTERS = select(meta.c.key, meta.c.value).where(meta.c.key.in_(COUNTERS))
BUMP = update(meta).where(meta.c.key == bindparam("counter")).values(value=cast(cast(meta.c.value, Integer) + 1, Text))
# where reads outside a write transaction go: the replica only where the caller says so (a web
# request; see Database.read_from_replica), the primary everywhere else (ingest, jobs, the CLI)
_REPLICA_READS: contextvars.ContextVar[bool] = contextvars.ContextVar("kb_replica_reads", default=False)
# PostgreSQL error classes that mean "no usable server here", not "this statement is wrong":
# connection exceptions, a server shutting down or starting, a standby refusing a write
UNAVAILABLE_STATES = ("08", "57P", "25006")
REPLICA_RETRY_SECONDS = 5.0  # how often the replica's state is checked (meanwhile the last answer stands)
REPLICA_MAX_LAG_SECONDS = 10.0  # a replica that has not replayed what the primary wrote this long ago serves no reads
CONNECT_TIMEOUT = 5  # seconds libpq waits for a host before the next (unless the URL says)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Database:
    """An engine plus the two ways kb touches it: `read()` and `transaction()`."""

    def __init__(self, engine: Engine, replica: Engine | None = None, where: str = ""):
        self.engine = engine
        self.replica = replica  # PostgreSQL: a streaming replica that web requests read from
        self.where = where  # the server, password hidden, for messages
        self._replica_lock = threading.Lock()
        self._replica_checked = float("-inf")  # when the replica's state was last checked (monotonic)
        self._replica_usable = False
        self._positions: deque[tuple[float, int]] = deque()  # (when, the primary's WAL position then)
        self._local = threading.local()  # the write transaction this thread is in, and its sqlite3 connection
        self._raw: list[sqlite3.Connection] = []  # every thread's, closed with the database
        self._raw_lock = threading.Lock()

    @classmethod
    def sqlite(cls, path: Path) -> "Database":
        """The database file, made 0600 before SQLite opens it (its -wal and -shm files take its
        mode); one left open to others by an older kb is closed."""
        path = Path(path)
        private.make_folder(path.parent)
        private.create_empty(path)
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            private.restrict(name, private.FILE_MODE)
        engine = create_engine(f"sqlite:///{Path(path)}", poolclass=QueuePool, pool_size=POOL_SIZE,
                               max_overflow=2 * POOL_SIZE, pool_timeout=30,
                               pool_reset_on_return=None,  # no transaction is left open to roll back
                               connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return cls(engine)

    @classmethod
    def postgres(cls, url: str, replica_url: str | None = None) -> "Database":
        """PostgreSQL through psycopg 3, the URL handed to libpq as given (several hosts and
        `target_session_attrs` included). Connections are checked before use, so a node survives
        a restart or a failover of the server."""
        return cls(_postgres_engine(url), _postgres_engine(replica_url) if replica_url else None, shown(url))

    @classmethod
    def open(cls, where: str | Path, replica_url: str | None = None) -> "Database":
        """A `postgresql://` URL (with an optional replica's), or the path of an SQLite file."""
        text = str(where)
        if text.startswith(("postgresql:", "postgres:", "postgresql+")):
            return cls.postgres(text, replica_url)
        return cls.sqlite(Path(where))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Connection]:
        """A connection to read with; inside a write transaction, that transaction's own (so a
        thread reads what it has written but not yet committed, and no other writer runs). With
        `snapshot`, PostgreSQL reads every statement from one snapshot (REPEATABLE READ) rather
        than each from its own, for reads that must agree with one another."""
        writing = getattr(self._local, "conn", None)
        if writing is not None:
            yield writing
            return
        with self._unavailable_as_error(), self._read_connection() as conn:  # SQLite: no transaction; PostgreSQL: one
            if snapshot and self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    def _read_connection(self) -> Connection:
        """The replica's, where this context reads from it and it is usable; else the primary's."""
        if self.replica is not None and _REPLICA_READS.get() and self.replica_usable():
            try:
                return self.replica.connect()
            except DBAPIError:
                with self._replica_lock:
                    self._replica_usable, self._replica_checked = False, time.monotonic()
        return self.engine.connect()

    def replica_usable(self) -> bool:
        """Whether reads may go to the replica: it answers, is still a replica, and has replayed
        what the primary had written REPLICA_MAX_LAG_SECONDS ago (a stalled one would show old
        sessions and documents for ever). Checked every REPLICA_RETRY_SECONDS; while the primary
        is down, a replica is what there is to read."""
        now = time.monotonic()
        with self._replica_lock:
            if now < self._replica_checked + REPLICA_RETRY_SECONDS:
                return self._replica_usable
            self._replica_checked = now  # one thread checks; the others keep the last answer meanwhile
        usable = self._check_replica(now)
        with self._replica_lock:
            self._replica_usable = usable
        return usable

    def _check_replica(self, now: float) -> bool:
        try:
            with self.replica.connect() as conn:
                replayed = conn.execute(text(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END")).scalar()
        except DBAPIError:
            return False
        if replayed is None:
            return False  # promoted, or never a replica
        try:
            with self.engine.connect() as conn:
                written = _lsn(conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar())
        except DBAPIError:
            return True
        with self._replica_lock:
            self._positions.append((now, written))
            while len(self._positions) > 1 and self._positions[1][0] <= now - REPLICA_MAX_LAG_SECONDS:
                self._positions.popleft()
            when, then = self._positions[0]
        return when > now - REPLICA_MAX_LAG_SECONDS or _lsn(replayed) >= then  # too soon to tell, or caught up

    def read_from_replica(self, on: bool) -> None:
        """From now on in the current context, reads outside a write transaction go to the replica
        (when there is one) or to the primary. A web request sets it as it starts; threads start
        with the primary, and a task handed to another thread keeps the choice only when run
        through `contextvars.copy_context().run`."""
        _REPLICA_READS.set(on and self.replica is not None)

    def primary_position(self) -> str | None:
        """PostgreSQL: the primary's current WAL position (after a write: what a replica must have
        replayed to show it)."""
        if self.dialect != "postgresql":
            return None
        with self._unavailable_as_error(), self.engine.connect() as conn:
            return conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar()

    def replica_has(self, position: str) -> bool:
        """Whether the replica has replayed the primary's WAL up to `position` (False when it is
        unreachable, or no longer a replica)."""
        if self.replica is None:
            return True
        try:
            with self.replica.connect() as conn:
                return bool(conn.execute(text("SELECT coalesce(pg_last_wal_replay_lsn() >= CAST(:p AS pg_lsn), false)"),
                                         {"p": position}).scalar())
        except DBAPIError:
            return False

    def health(self, replica: bool = False) -> dict:
        """Whether the primary answers and takes writes; with `replica`, the replica's state and
        lag (seconds since the last transaction it replayed, 0 when it has replayed all it received)."""
        out = {"reachable": False, "writable": False}
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    out["writable"] = bool(conn.execute(text(
                        "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'")).scalar())
                else:
                    conn.execute(text("SELECT 1"))
                    out["writable"] = os.access(self.engine.url.database, os.W_OK)
                out["reachable"] = True
        except DBAPIError:
            pass
        if replica and self.replica is not None:
            out["replica"] = {"reachable": False, "lag_bytes": None, "serving_reads": self.replica_usable()}
            try:
                with self.replica.connect() as conn:
                    replayed = conn.execute(text(
                        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END")).scalar()
                out["replica"]["reachable"] = True
                if replayed is not None and out["reachable"]:
                    out["replica"]["lag_bytes"] = max(0, _lsn(self.primary_position()) - _lsn(replayed))
            except (DBAPIError, DatabaseUnavailable):
                pass
        return out

    def take_write(self) -> bool:
        """Whether this thread committed a write transaction since it last asked."""
        wrote, self._local.wrote = getattr(self._local, "wrote", False), False
        return wrote

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """PostgreSQL: a server that cannot be reached, is shutting down or is a standby becomes
        DatabaseUnavailable (HTTP 503: try again); other errors stay as they are."""
        try:
            yield
        except DBAPIError as exc:
            if self.dialect != "postgresql" or not _unavailable(exc):
                raise
            reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            raise DatabaseUnavailable(f"cannot reach the database at {self.where}: {reason}") from exc

    @contextmanager
    def sqlite_read(self) -> Iterator["sqlite3.Connection"]:
        """SQLite only: this thread's own sqlite3 connection, for the few reads every search makes.
        SQLAlchemy spends about 80 µs on a statement that sqlite3 runs in 10; a search makes a
        dozen, a fifth of its time at 5,000 passages (bench/ measured). Inside a write transaction,
        that transaction's connection."""
        writing = getattr(self._local, "conn", None)
        if writing is not None:
            yield writing.connection.driver_connection
            return
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = sqlite3.connect(self.engine.url.database, timeout=30, check_same_thread=False)
            _sqlite_connect(raw)
            with self._raw_lock:
                self._raw.append(raw)
        yield raw

    @contextmanager
    def transaction(self, bump: str | None = "generation", lock: bool = True) -> Iterator[Connection]:
        """One write transaction. Chunks or vectors changing bump the `generation` (a running server
        then reloads the vector index); metadata changes bump the `revision` (cached filters are
        dropped); bookkeeping (accounts, audit, jobs) bumps nothing. Nested in another on the same
        thread, it joins that one. On PostgreSQL it takes the writer lock first unless `lock` is
        False (for a lone statement that cannot conflict, such as an insert that ignores a duplicate)."""
        outer = getattr(self._local, "conn", None)
        if outer is not None:  # already in one on this thread: the work joins it
            yield outer
            if bump:
                outer.execute(BUMP, {"counter": bump})
            return
        with self._unavailable_as_error(), self.engine.connect().execution_options(kb_write=True) as conn:
            with conn.begin():
                if self.dialect == "postgresql" and lock:  # one writer at a time, as SQLite's BEGIN IMMEDIATE makes it
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
                self._local.conn = conn
                try:
                    yield conn
                    if bump:
                        conn.execute(BUMP, {"counter": bump})
                finally:
                    self._local.conn = None
            self._local.wrote = True

    @contextmanager
    def advisory_lock(self, key: int, wait: float) -> Iterator[None]:
        """PostgreSQL: hold a session-level advisory lock (one writer across every node), waiting up
        to `wait` seconds for it; Busy when another session keeps it."""
        with self._unavailable_as_error(), self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            deadline = time.monotonic() + wait
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise Busy("another process is writing to this collection; try again when it ends")
                time.sleep(0.1)
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                except DBAPIError:
                    pass  # the session is gone, and its lock with it; the error that ended the work stands

    def counter(self, key: str, conn: Connection | None = None) -> int | None:
        """A number kept in the `meta` table (None when it was never set)."""
        if conn is None and self.dialect == "sqlite":
            with self.sqlite_read() as raw:
                row = raw.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else int(row[0])
        if conn is not None:
            value = conn.execute(COUNTER, {"key": key}).scalar()
        else:
            with self.read() as c:
                value = c.execute(COUNTER, {"key": key}).scalar()
        return None if value is None else int(value)

    def counters(self) -> tuple[int, int]:
        """(generation, revision) in one read."""
        if self.dialect == "sqlite":
            with self.sqlite_read() as raw:
                rows = dict(raw.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'revision')"))
        else:
            with self.read() as conn:
                rows = dict(conn.execute(BOTH_COUNTERS).all())
        return int(rows["generation"]), int(rows.get("revision", 0))

    def set_counter(self, conn: Connection, key: str, value: int) -> None:
        if conn.execute(update(meta).where(meta.c.key == key).values(value=str(value))).rowcount == 0:
            conn.execute(meta.insert().values(key=key, value=str(value)))

    def raw_sqlite(self):
        """A plain sqlite3 connection for the numbered migrations (executescript), checked out of
        the pool; the caller closes it (back to the pool)."""
        return self.engine.raw_connection()

    def close(self) -> None:
        with self._raw_lock:
            raw, self._raw = self._raw, []
        for conn in raw:
            conn.close()
        self._local = threading.local()
        self.engine.dispose()
        if self.replica is not None:
            self.replica.dispose()


def _sqlite_connect(dbapi_conn, _record=None) -> None:
    dbapi_conn.isolation_level = None  # kb says when a transaction begins (see _sqlite_begin)
    _wal(dbapi_conn)
    for pragma in ("synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 30000",
                   f"mmap_size = {MMAP_BYTES}"):  # reads through a memory map: rows and FTS5 pages without read() calls
        dbapi_conn.execute(f"PRAGMA {pragma}")


class _TextDumper(StrDumperUnknown):
    """Text parameters without NUL characters, which PostgreSQL cannot store in text (psycopg would
    refuse the whole statement; SQLite keeps them): a NUL in a query, a filter or a file's
    metadata is dropped instead of failing the request."""

    def dump(self, obj: str):
        return super().dump(obj.replace("\x00", ""))


def _postgres_engine(url: str) -> Engine:
    """An engine whose connections libpq makes from the URL itself: SQLAlchemy's own URL parser
    takes one host only, libpq several (`host1:5432,host2:5432`, tried in turn)."""
    if url.startswith("postgresql+psycopg://"):
        url = "postgresql://" + url.split("://", 1)[1]
    timeout = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url, **timeout), pool_size=POOL_SIZE,
                           max_overflow=POOL_SIZE, pool_timeout=30, pool_pre_ping=True)
    event.listen(engine, "connect", _postgres_connect)
    return engine


def shown(url: str) -> str:
    """A PostgreSQL URL fit for a message or a log: any password, in the user part or as
    ?password=, replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, hosts = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}{':***' if ':' in user else ''}@{hosts}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*,:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _lsn(position: str) -> int:
    """A WAL position as PostgreSQL writes it ("16/B374D848") as a number of bytes."""
    high, _, low = position.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means no usable server (so: 503, try again), not a bad statement."""
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:  # no answer from a server: it could not connect, or lost the connection
        return isinstance(exc, OperationalError)
    return state.startswith(UNAVAILABLE_STATES)


def _postgres_connect(dbapi_conn, _record) -> None:
    dbapi_conn.adapters.register_dumper(str, _TextDumper)  # psycopg's own for str, as SQLAlchemy sends it


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("kb_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _wal(dbapi_conn) -> None:
    """Switch to WAL. On a new file another process may be switching at the same moment, and
    SQLite then answers "locked" at once instead of waiting: try again for up to five seconds."""
    for attempt in range(100):
        try:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)


__all__ = ["Database", "OperationalError", "now"]
