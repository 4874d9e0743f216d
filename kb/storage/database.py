"""The connection to the database: an SQLAlchemy engine, read connections and write transactions.

SQLite: one file in WAL mode, so readers never wait for a writer; a write transaction starts with
`BEGIN IMMEDIATE` (it takes the write lock at once instead of failing on upgrade), and reads run
outside any transaction, each statement on its own, as sqlite3's autocommit mode does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import (Connection, Engine, Integer, Text, bindparam, cast, create_engine, event, select, text,
                        update)
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from psycopg.types.string import StrDumperUnknown

from ..errors import Busy
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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Database:
    """An engine plus the two ways kb touches it: `read()` and `transaction()`."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.local()  # the write transaction this thread is in, and its sqlite3 connection
        self._raw: list[sqlite3.Connection] = []  # every thread's, closed with the database
        self._raw_lock = threading.Lock()

    @classmethod
    def sqlite(cls, path: Path) -> "Database":
        engine = create_engine(f"sqlite:///{Path(path)}", poolclass=QueuePool, pool_size=POOL_SIZE,
                               max_overflow=2 * POOL_SIZE, pool_timeout=30,
                               pool_reset_on_return=None,  # no transaction is left open to roll back
                               connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return cls(engine)

    @classmethod
    def postgres(cls, url: str) -> "Database":
        """PostgreSQL through psycopg 3. Connections are checked before use, so a node survives a
        restart or a failover of the server."""
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_timeout=30,
                               pool_pre_ping=True)
        event.listen(engine, "connect", _postgres_connect)
        return cls(engine)

    @classmethod
    def open(cls, where: str | Path) -> "Database":
        """A `postgresql://` URL, or the path of an SQLite file."""
        text = str(where)
        if text.startswith(("postgresql:", "postgres:", "postgresql+")):
            return cls.postgres(text)
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
        with self.engine.connect() as conn:  # SQLite: no transaction; PostgreSQL: one, ended on return
            if snapshot and self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

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
        with self.engine.connect().execution_options(kb_write=True) as conn:
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

    @contextmanager
    def advisory_lock(self, key: int, wait: float) -> Iterator[None]:
        """PostgreSQL: hold a session-level advisory lock (one writer across every node), waiting up
        to `wait` seconds for it; Busy when another session keeps it."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            deadline = time.monotonic() + wait
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise Busy("another process is writing to this collection; try again when it ends")
                time.sleep(0.1)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

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
