"""Queries for background jobs (uploads) and their claims by worker processes."""

from __future__ import annotations

import json

from sqlalchemy import func, insert, select, update

from ..models import Job
from .database import Database, now
from .schema import jobs

JOB_COLUMNS = tuple(jobs.c[name] for name in (
    "id", "kind", "created_by", "original_name", "upload_path", "meta", "status", "progress", "message",
    "doc_id", "duplicate_of", "created_at", "updated_at"))


def _job(row) -> Job:
    data = dict(row._mapping)
    data["meta"] = json.loads(data["meta"] or "{}")
    return Job(**data)


class JobRows:
    def __init__(self, db: Database):
        self.db = db

    def create(self, kind: str, created_by: str, original_name: str, upload_path: str | None, meta: dict) -> int:
        stamp = now()
        with self.db.transaction(bump=None) as conn:
            return int(conn.execute(insert(jobs).values(
                kind=kind, created_by=created_by, original_name=original_name, upload_path=upload_path,
                meta=json.dumps(meta), status="queued", created_at=stamp, updated_at=stamp)).inserted_primary_key[0])

    def get(self, job_id: int) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute(select(*JOB_COLUMNS).where(jobs.c.id == job_id)).first()
        return _job(row) if row else None

    def latest(self, limit: int) -> list[Job]:
        with self.db.read() as conn:
            return [_job(r) for r in conn.execute(select(*JOB_COLUMNS).order_by(jobs.c.id.desc()).limit(limit))]

    def claim_next(self, owner: str) -> int | None:
        """Mark the oldest queued job running for `owner`, atomically; its id, or None."""
        oldest = select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.id).limit(1)
        if self.db.dialect == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        with self.db.transaction(bump=None) as conn:
            return conn.execute(update(jobs).where(jobs.c.id == oldest.scalar_subquery())
                                .values(status="running", owner=owner, updated_at=now())
                                .returning(jobs.c.id)).scalar()

    def count(self, statuses: tuple[str, ...]) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(jobs).where(jobs.c.status.in_(statuses))).scalar()

    def update(self, job_id: int, changes: dict) -> None:
        if "meta" in changes:
            changes = {**changes, "meta": json.dumps(changes["meta"])}
        with self.db.transaction(bump=None) as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**changes, updated_at=now()))

    def heartbeat(self, job_id: int) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running").values(updated_at=now()))

    def requeue_stale(self, updated_before: str) -> int:
        """Running jobs not updated since this time back to the queue."""
        with self.db.transaction(bump=None) as conn:
            return conn.execute(update(jobs).where(jobs.c.status == "running", jobs.c.updated_at < updated_before)
                                .values(status="queued", progress=0, owner=None)).rowcount

    def requeue_claims(self, claims: list[tuple[int, str | None]]) -> int:
        """These jobs back to the queue, each only while still running for the owner given."""
        done = 0
        with self.db.transaction(bump=None) as conn:
            for job_id, owner in claims:
                done += conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running",
                                                        jobs.c.owner.is_(owner) if owner is None else jobs.c.owner == owner)
                                     .values(status="queued", progress=0, owner=None)).rowcount
        return done

    def running_owners(self) -> list[tuple[int, str | None]]:
        with self.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(select(jobs.c.id, jobs.c.owner).where(jobs.c.status == "running"))]
