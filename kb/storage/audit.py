"""Queries for the audit log."""

from __future__ import annotations

from sqlalchemy import insert, select

from ..models import AuditEntry
from .database import Database, now
from .schema import audit


class AuditRows:
    def __init__(self, db: Database):
        self.db = db

    def add(self, actor: str, action: str, target: str, detail: str) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(insert(audit).values(at=now(), actor=actor, action=action, target=target, detail=detail))

    def entries(self, limit: int, offset: int, action: str | None) -> list[AuditEntry]:
        query = select(audit.c.id, audit.c.at, audit.c.actor, audit.c.action, audit.c.target, audit.c.detail)
        if action:
            query = query.where(audit.c.action == action)
        with self.db.read() as conn:
            return [AuditEntry(*r) for r in conn.execute(query.order_by(audit.c.id.desc()).limit(limit).offset(offset))]
