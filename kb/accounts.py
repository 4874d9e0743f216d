"""Accounts: users with a role, hashed passwords, sign-in sessions, and sign-in throttling (kb/throttle.py)."""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from werkzeug.security import check_password_hash, generate_password_hash

from . import throttle
from .errors import BadRequest, NotFound, TooManyAttempts
from .models import User
from .passwords import password_problem
from .storage import Store

ROLES = ("curator", "partner")
SESSION_SECONDS = 14 * 24 * 3600  # a sign-in lasts two weeks at most
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


@dataclass(frozen=True)
class Device:
    """A browser, as its signed known-device cookie names it: its own id and the ids of the users
    who have signed in on it."""
    id: str
    users: tuple[int, ...] = ()


class Accounts:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time):
        self.store = store
        self.rows = store.accounts
        self.clock = clock  # for sign-in throttling; tests pass their own

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

    def authenticate(self, name: str, password: str, address: str, device: Device | None = None) -> User | None:
        """The user when the password is right; None when not; TooManyAttempts while a bucket of
        failures it counts in is full (kb/throttle.py). `address` is the client's; `device` is what
        this browser's known-device cookie says, if it has a valid one."""
        found = self.rows.password_hash(name) if "\x00" not in (name or "") else None  # no name holds a NUL
        known = device if device is not None and found is not None and found[0] in device.users else None
        limits = _buckets(name, address, known)
        self._count(limits, lambda counts, now: throttle.charge(counts, limits, now))
        if not (check_password_hash(found[1], password or "") if found else _burn(password)):
            return None  # counted already
        clear = {next(iter(limits))}  # the pair's or the device's
        self._count(limits, lambda counts, now: (0.0, throttle.refund(counts, limits, clear, now)))
        return self.by_id(found[0])

    def _count(self, limits: dict[str, throttle.Limit], change) -> None:
        """Apply `change` (counts, now) -> (wait, new counts) to the buckets of `limits` in one transaction."""
        def apply(found: dict[str, tuple[int, float]]):
            now = self.clock()
            wait, counts = change({key: throttle.Count(*row) for key, row in found.items()}, now)
            return wait, {key: None if c is None else (c.failures, c.since) for key, c in counts.items()}

        wait = self.rows.update_failures(list(limits), apply, forget_before=self.clock() - throttle.FORGET_SECONDS)
        if wait > 0:
            raise TooManyAttempts(f"too many failed sign-ins; try again in {math.ceil(wait)} seconds")


def _buckets(name: str, address: str, device: Device | None) -> dict[str, throttle.Limit]:
    """The buckets an attempt counts in, the one a success empties first (see kb/throttle.py)."""
    if device is not None:
        return {f"device:{device.id}": throttle.PERSON}
    account = (name or "").lower()[:64]  # no account's name is longer
    return {f"pair:{address} {account}": throttle.PERSON, f"account:{account}": throttle.ACCOUNT,
            f"address:{address}": throttle.ADDRESS}


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
