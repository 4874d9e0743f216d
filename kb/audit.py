"""The audit log: who did what, to what, and when."""

from __future__ import annotations

from .models import AuditEntry as Entry
from .storage import Store


def record(store: Store, actor: str, action: str, target: str = "", detail: str = "") -> None:
    store.audit.add(actor, action, str(target), detail[:2000])


def entries(store: Store, limit: int = 200, offset: int = 0, action: str | None = None) -> list[Entry]:
    return store.audit.entries(limit, offset, action)
