"""Accounts: users with a role, hashed passwords, and sign-in throttling per account and address."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time

from werkzeug.security import check_password_hash, generate_password_hash

from .errors import BadRequest, NotFound, TooManyAttempts
from .models import User
from .passwords import password_problem
from .storage import Store

ROLES = ("curator", "partner")
MAX_FREE_FAILURES = 5
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 14 * 24 * 3600  # a sign-in lasts two weeks at most
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


class Accounts:
    def __init__(self, store: Store):
        self.store = store
        self.rows = store.accounts

    def add(self, name: str, role: str, password: str) -> User:
        if not _NAME.match(name or ""):
            raise BadRequest("a user name is 2-64 letters, digits or . _ @ -, starting with a letter or digit")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        _check_password(password, name)
        if not self.rows.add_user(name, role, generate_password_hash(password)):
            raise BadRequest(f"user {name!r} already exists")
        return self.get(name)

    def get(self, name: str) -> User:
        user = self.rows.user(name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    def by_id(self, user_id: int) -> User | None:
        return self.rows.user_by_id(user_id)

    def open_session(self, user_id: int) -> str:
        """A new sign-in session; the token goes in the (signed) cookie, only its hash is stored."""
        token = secrets.token_urlsafe(32)
        at = time.time()
        self.rows.open_session(_digest(token), user_id, at, expired_before=at - SESSION_SECONDS)
        return token

    def session_user(self, token: str) -> User | None:
        """The user a live session belongs to; None once it was closed, expired or its user removed."""
        return self.rows.session_user(_digest(token), since=time.time() - SESSION_SECONDS)

    def close_session(self, token: str) -> None:
        self.rows.close_session(_digest(token))

    def list(self) -> list[User]:
        return self.rows.users()

    def remove(self, name: str) -> None:
        self.rows.remove_user(self.get(name).id)

    def set_password(self, name: str, password: str) -> int:
        """A new password for an existing account, which signs that user out everywhere (a reset
        usually follows a suspected leak); how many sessions were closed."""
        user = self.get(name)
        _check_password(password, user.name)
        return self.rows.set_password_hash(user.id, generate_password_hash(password))

    def authenticate(self, name: str, password: str, address: str) -> User | None:
        """The user when the password is right; None when not; TooManyAttempts while locked out."""
        keys = [f"user:{(name or '').lower()}", f"addr:{address}"]
        self._check_lock(keys)
        found = self.rows.password_hash(name) if "\x00" not in (name or "") else None  # no name holds a NUL
        ok = check_password_hash(found[1], password or "") if found else _burn(password)
        if ok:
            self.rows.clear_failures(keys[0])
            return self.by_id(found[0])
        self.rows.count_failure(keys, time.time())
        return None

    def _check_lock(self, keys: list[str]) -> None:
        for key in keys:
            counted = self.rows.failures(key)
            if counted is None or counted[0] < MAX_FREE_FAILURES:
                continue
            failures, last_at = counted
            lock = min(BASE_LOCK_SECONDS * 2 ** (failures - MAX_FREE_FAILURES), MAX_LOCK_SECONDS)
            wait = last_at + lock - time.time()
            if wait > 0:
                raise TooManyAttempts(f"too many failed sign-ins; try again in {int(wait) + 1} seconds")


def _check_password(password: str, name: str) -> None:
    problem = password_problem(password, name)
    if problem:
        raise BadRequest(problem)


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
