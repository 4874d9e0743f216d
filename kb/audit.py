"""The audit log: who did what, to what, and when."""

from __future__ import annotations

from dataclasses import dataclass

from .store import Store, now


@dataclass(frozen=True)
class Entry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: str


def record(store: Store, actor: str, action: str, target: str = "", detail: str = "") -> None:
    with store.transaction(bump=None) as conn:
        conn.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                     (now(), actor, action, str(target), detail[:2000]))


def entries(store: Store, limit: int = 200, offset: int = 0, action: str | None = None) -> list[Entry]:
    where, params = ("WHERE action = ?", [action]) if action else ("", [])
    rows = store.conn.execute(f"SELECT id, at, actor, action, target, detail FROM audit {where} "
                              "ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
    return [Entry(**dict(r)) for r in rows]
