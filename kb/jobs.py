"""Ingestion jobs (uploads, re-embedding) that a background worker runs and curators watch."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone

from .errors import NotFound
from .models import Job
from .storage import Store

STATUSES = ("queued", "running", "needs_decision", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
LEASE_SECONDS = 120  # a running job whose worker has not beaten for this long is taken as abandoned


class Jobs:
    def __init__(self, store: Store):
        self.store = store
        self.rows = store.jobs

    def create(self, kind: str, created_by: str, original_name: str = "", upload_path: str | None = None,
               meta: dict | None = None) -> Job:
        return self.get(self.rows.create(kind, created_by, original_name, upload_path, meta or {}))

    def get(self, job_id: int) -> Job:
        job = self.rows.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def list(self, limit: int = 100) -> list[Job]:
        return self.rows.latest(limit)

    def claim_next(self, owner: str = "") -> Job | None:
        """Take the oldest queued job for this process, atomically: of several servers on one data
        folder, exactly one gets each job."""
        job_id = self.rows.claim_next(owner or this_process())
        return self.get(job_id) if job_id is not None else None

    def active(self) -> int:
        """How many jobs are queued or running."""
        return self.rows.count(ACTIVE)

    def update(self, job_id: int, **changes) -> Job:
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(changes["status"])
        self.rows.update(job_id, changes)
        return self.get(job_id)

    def heartbeat(self, job_id: int) -> None:
        """The running process still holds this job (see `requeue_stale`)."""
        self.rows.heartbeat(job_id)

    def requeue_stale(self, lease: float = LEASE_SECONDS) -> int:
        """Running jobs whose process stopped beating (it crashed, or its machine went) go back to
        the queue; a live worker beats every few seconds while it runs one."""
        cutoff = (datetime.now(timezone.utc) - timedelta(seconds=lease)).isoformat(timespec="seconds")
        return self.rows.requeue_stale(cutoff)

    def requeue(self, job_id: int, owner: str = "") -> bool:
        """Put a job this process holds back in the queue (it met a passing condition: another
        writer, a database failing over); False when it no longer holds it."""
        return self.rows.requeue_claims([(job_id, owner or this_process())]) == 1

    def requeue_orphans(self) -> int:
        """At start: running jobs of processes on this machine that no longer exist go back to the
        queue at once (others wait for their lease to lapse)."""
        host = socket.gethostname()
        gone = [(job_id, owner) for job_id, owner in self.rows.running_owners()
                if (owner or "").rpartition(":")[0] == host and not _running((owner or "").rpartition(":")[2])]
        return self.rows.requeue_claims(gone)


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
