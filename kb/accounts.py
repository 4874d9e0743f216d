"""Accounts: users with a role, hashed passwords, and sign-in throttling per account and address."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from .errors import BadRequest, NotFound, TooManyAttempts
from .store import Store, now

ROLES = ("curator", "partner")
MAX_FREE_FAILURES = 5
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 14 * 24 * 3600  # a sign-in lasts two weeks at most
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: str

    def visibility(self) -> tuple[str, ...]:
        return ("public", "partners", "curators") if self.role == "curator" else ("public", "partners")


class Accounts:
    def __init__(self, store: Store):
        self.store = store

    def add(self, name: str, role: str, password: str) -> User:
        if not _NAME.match(name or ""):
            raise BadRequest("a user name is 2-64 letters, digits or . _ @ -, starting with a letter or digit")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        if len(password or "") < 10:
            raise BadRequest("the password needs at least 10 characters")
        with self.store.transaction(bump=None) as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise BadRequest(f"user {name!r} already exists")
            conn.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                         (name, role, generate_password_hash(password), now()))
        return self.get(name)

    def get(self, name: str) -> User:
        row = self.store.conn.execute("SELECT id, name, role, created_at FROM users WHERE name = ?",
                                      (name,)).fetchone()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return User(**dict(row))

    def by_id(self, user_id: int) -> User | None:
        row = self.store.conn.execute("SELECT id, name, role, created_at FROM users WHERE id = ?",
                                      (user_id,)).fetchone()
        return User(**dict(row)) if row else None

    def open_session(self, user_id: int) -> str:
        """A new sign-in session; the token goes in the (signed) cookie, only its hash is stored."""
        token = secrets.token_urlsafe(32)
        with self.store.transaction(bump=None) as conn:
            conn.execute("DELETE FROM sessions WHERE created_at < ?", (time.time() - SESSION_SECONDS,))
            conn.execute("INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?, ?, ?)",
                         (_digest(token), user_id, time.time()))
        return token

    def session_user(self, token: str) -> User | None:
        """The user a live session belongs to; None once it was closed, expired or its user removed."""
        row = self.store.conn.execute(
            "SELECT u.id, u.name, u.role, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = ? AND s.created_at >= ?", (_digest(token), time.time() - SESSION_SECONDS)).fetchone()
        return User(**dict(row)) if row else None

    def close_session(self, token: str) -> None:
        with self.store.transaction(bump=None) as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_digest(token),))

    def list(self) -> list[User]:
        return [User(**dict(r)) for r in self.store.conn.execute(
            "SELECT id, name, role, created_at FROM users ORDER BY name")]

    def remove(self, name: str) -> None:
        user = self.get(name)
        with self.store.transaction(bump=None) as conn:
            conn.execute("DELETE FROM users WHERE id = ?", (user.id,))

    def authenticate(self, name: str, password: str, address: str) -> User | None:
        """The user when the password is right; None when not; TooManyAttempts while locked out."""
        keys = [f"user:{(name or '').lower()}", f"addr:{address}"]
        self._check_lock(keys)
        row = self.store.conn.execute("SELECT id, password_hash FROM users WHERE name = ?", (name,)).fetchone()
        ok = check_password_hash(row["password_hash"], password or "") if row else _burn(password)
        with self.store.transaction(bump=None) as conn:
            if ok:
                conn.execute("DELETE FROM login_failures WHERE key = ?", (keys[0],))
            else:
                for key in keys:
                    conn.execute(
                        "INSERT INTO login_failures (key, failures, last_at) VALUES (?, 1, ?) ON CONFLICT(key) "
                        "DO UPDATE SET failures = failures + 1, last_at = excluded.last_at", (key, time.time()))
        return self.by_id(row["id"]) if ok else None

    def _check_lock(self, keys: list[str]) -> None:
        for key in keys:
            row = self.store.conn.execute("SELECT failures, last_at FROM login_failures WHERE key = ?",
                                          (key,)).fetchone()
            if row is None or row["failures"] < MAX_FREE_FAILURES:
                continue
            lock = min(BASE_LOCK_SECONDS * 2 ** (row["failures"] - MAX_FREE_FAILURES), MAX_LOCK_SECONDS)
            wait = row["last_at"] + lock - time.time()
            if wait > 0:
                raise TooManyAttempts(f"too many failed sign-ins; try again in {int(wait) + 1} seconds")


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown names against; made when first needed (scrypt costs about 0.15 s,
    which every process start paid at import)."""
    return generate_password_hash("not a real password")


def _burn(password: str) -> bool:
    """Spend the same time on an unknown account as on a known one, so names cannot be probed."""
    check_password_hash(_dummy_hash(), password or "")
    return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
