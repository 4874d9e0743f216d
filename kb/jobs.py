"""Ingestion jobs (uploads, re-embedding) that a background worker runs and curators watch."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .errors import NotFound
from .store import Store, now

STATUSES = ("queued", "running", "needs_decision", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
LEASE_SECONDS = 120  # a running job whose worker has not beaten for this long is taken as abandoned


@dataclass
class Job:
    id: int
    kind: str
    created_by: str
    original_name: str
    upload_path: str | None
    meta: dict
    status: str
    progress: int
    message: str
    doc_id: int | None
    duplicate_of: int | None
    created_at: str
    updated_at: str


COLUMNS = ("id, kind, created_by, original_name, upload_path, meta, status, progress, message, doc_id, "
           "duplicate_of, created_at, updated_at")


def _job(row) -> Job:
    data = dict(row)
    data["meta"] = json.loads(data["meta"] or "{}")
    return Job(**data)


class Jobs:
    def __init__(self, store: Store):
        self.store = store

    def create(self, kind: str, created_by: str, original_name: str = "", upload_path: str | None = None,
               meta: dict | None = None) -> Job:
        stamp = now()
        with self.store.transaction(bump=None) as conn:
            cur = conn.execute(
                "INSERT INTO jobs (kind, created_by, original_name, upload_path, meta, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                (kind, created_by, original_name, upload_path, json.dumps(meta or {}), stamp, stamp))
        return self.get(int(cur.lastrowid))

    def get(self, job_id: int) -> Job:
        row = self.store.conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return _job(row)

    def list(self, limit: int = 100) -> list[Job]:
        return [_job(r) for r in self.store.conn.execute(
            f"SELECT {COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,))]

    def claim_next(self, owner: str = "") -> Job | None:
        """Take the oldest queued job for this process, atomically: of several servers on one data
        folder, exactly one gets each job."""
        owner = owner or this_process()
        with self.store.transaction(bump=None) as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', owner = ?, updated_at = ? WHERE id = "
                "(SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1) RETURNING id",
                (owner, now())).fetchone()
        return self.get(row[0]) if row else None

    def active(self) -> int:
        """How many jobs are queued or running."""
        return self.store.conn.execute(
            f"SELECT count(*) FROM jobs WHERE status IN ({', '.join('?' * len(ACTIVE))})", ACTIVE).fetchone()[0]

    def update(self, job_id: int, **changes) -> Job:
        if "meta" in changes:
            changes["meta"] = json.dumps(changes["meta"])
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(changes["status"])
        assignments = ", ".join(f"{k} = ?" for k in changes)
        with self.store.transaction(bump=None) as conn:
            conn.execute(f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?",
                         [*changes.values(), now(), job_id])
        return self.get(job_id)

    def heartbeat(self, job_id: int) -> None:
        """The running process still holds this job (see `requeue_stale`)."""
        with self.store.transaction(bump=None) as conn:
            conn.execute("UPDATE jobs SET updated_at = ? WHERE id = ? AND status = 'running'", (now(), job_id))

    def requeue_stale(self, lease: float = LEASE_SECONDS) -> int:
        """Running jobs whose process stopped beating (it crashed, or its machine went) go back to
        the queue; a live worker beats every few seconds while it runs one."""
        cutoff = (datetime.now(timezone.utc) - timedelta(seconds=lease)).isoformat(timespec="seconds")
        with self.store.transaction(bump=None) as conn:
            return conn.execute("UPDATE jobs SET status = 'queued', progress = 0, owner = NULL "
                                "WHERE status = 'running' AND updated_at < ?", (cutoff,)).rowcount


    def requeue_orphans(self) -> int:
        """At start: running jobs of processes on this machine that no longer exist go back to the
        queue at once (others wait for their lease to lapse)."""
        host = socket.gethostname()
        with self.store.transaction(bump=None) as conn:
            gone = [job_id for job_id, owner in conn.execute("SELECT id, owner FROM jobs WHERE status = 'running'")
                    if (owner or "").rpartition(":")[0] == host and not _running((owner or "").rpartition(":")[2])]
            conn.executemany("UPDATE jobs SET status = 'queued', progress = 0, owner = NULL WHERE id = ?",
                             [(i,) for i in gone])
        return len(gone)


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _running(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
