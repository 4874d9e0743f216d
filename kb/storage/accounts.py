"""Queries for accounts: users, sign-in sessions and failed sign-in counts."""

from __future__ import annotations

from typing import Callable, TypeVar

from sqlalchemy import delete, func, insert, select, update

from ..models import User
from .database import Database, now
from .schema import login_failures, sessions, users

T = TypeVar("T")
USER_COLUMNS = (users.c.id, users.c.name, users.c.role, users.c.created_at)


def _same_name(name: str):
    return func.lower(users.c.name) == (name or "").lower()  # names are unique regardless of case


class AccountRows:
    def __init__(self, db: Database):
        self.db = db

    def add_user(self, name: str, role: str, password_hash: str) -> bool:
        """Create the user; False when the name (in any case) is taken."""
        with self.db.transaction(bump=None) as conn:
            if conn.execute(select(users.c.id).where(_same_name(name))).first():
                return False
            conn.execute(insert(users).values(name=name, role=role, password_hash=password_hash, created_at=now()))
        return True

    def user(self, name: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(*USER_COLUMNS).where(_same_name(name))).first()
        return User(*row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id)).first()
        return User(*row) if row else None

    def password_hash(self, name: str) -> tuple[int, str] | None:
        with self.db.read() as conn:
            row = conn.execute(select(users.c.id, users.c.password_hash).where(_same_name(name))).first()
        return (row[0], row[1]) if row else None

    def users(self) -> list[User]:
        with self.db.read() as conn:
            return [User(*r) for r in conn.execute(select(*USER_COLUMNS).order_by(users.c.name))]

    def remove_user(self, user_id: int) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(users).where(users.c.id == user_id))

    def set_password_hash(self, user_id: int, password_hash: str) -> int:
        """The user's new hash and every one of their sessions closed, together; how many were closed."""
        with self.db.transaction(bump=None) as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
            return conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount

    def open_session(self, token_hash: str, user_id: int, at: float, expired_before: float) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(sessions).where(sessions.c.created_at < expired_before))
            conn.execute(insert(sessions).values(token_hash=token_hash, user_id=user_id, created_at=at))

    def session_user(self, token_hash: str, since: float) -> User | None:
        query = (select(*USER_COLUMNS).join_from(sessions, users, users.c.id == sessions.c.user_id)
                 .where(sessions.c.token_hash == token_hash, sessions.c.created_at >= since))
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return User(*row) if row else None

    def close_session(self, token_hash: str) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    def update_failures(self, keys: list[str], change: Callable[[dict[str, tuple[int, float]]], tuple[T, dict]],
                        forget_before: float) -> T:
        """In one write transaction: read the (failures, since) counted under `keys`, write what
        `change` makes of them (None deletes a key) and return its first value; counts untouched
        since `forget_before` are deleted."""
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(login_failures).where(login_failures.c.last_at < forget_before))
            found = {row[0]: (row[1], row[2]) for row in conn.execute(
                select(login_failures.c.key, login_failures.c.failures, login_failures.c.last_at)
                .where(login_failures.c.key.in_(keys)))}
            result, writes = change(found)
            for key, value in sorted(writes.items()):
                if value is None:
                    conn.execute(delete(login_failures).where(login_failures.c.key == key))
                elif key in found:
                    conn.execute(update(login_failures).where(login_failures.c.key == key)
                                 .values(failures=value[0], last_at=value[1]))
                else:
                    conn.execute(insert(login_failures).values(key=key, failures=value[0], last_at=value[1]))
        return result
