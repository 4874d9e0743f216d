"""Queries for follows (of a question or a saved search), feed tokens, and the documents a follow
looks at: those changed since a time, and the most recently changed."""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, select, update

from ..models import Filters, Follow, User
from .accounts import USER_COLUMNS
from .database import Database, now
from .filters import conditions
from .schema import documents, feed_tokens, follows, users

FOLLOW_COLUMNS = (follows.c.id, follows.c.user_id, follows.c.question_id, follows.c.query, follows.c.filters,
                  follows.c.created_at, follows.c.seen_at, follows.c.seen_mark)


def _follow(row) -> Follow:
    return Follow(row.id, row.user_id, row.question_id, row.query, json.loads(row.filters or "{}"),
                  row.created_at, row.seen_at, int(row.seen_mark))


class FollowRows:
    def __init__(self, db: Database):
        self.db = db

    def add(self, user_id: int, question_id: int | None, query: str, params: dict, mark: int) -> Follow:
        at = now()
        with self.db.transaction(bump=None) as conn:
            follow_id = conn.execute(insert(follows).values(
                user_id=user_id, question_id=question_id, query=query, filters=json.dumps(params, sort_keys=True),
                created_at=at, seen_at=at, seen_mark=mark)).inserted_primary_key[0]
            row = conn.execute(select(*FOLLOW_COLUMNS).where(follows.c.id == follow_id)).first()
        return _follow(row)

    def of_user(self, user_id: int) -> list[Follow]:
        with self.db.read() as conn:
            rows = conn.execute(select(*FOLLOW_COLUMNS).where(follows.c.user_id == user_id).order_by(follows.c.id))
            return [_follow(r) for r in rows]

    def get(self, follow_id: int, user_id: int) -> Follow | None:
        with self.db.read() as conn:
            row = conn.execute(select(*FOLLOW_COLUMNS).where(follows.c.id == follow_id,
                                                             follows.c.user_id == user_id)).first()
        return _follow(row) if row else None

    def remove(self, follow_id: int, user_id: int) -> bool:
        with self.db.transaction(bump=None) as conn:
            return conn.execute(delete(follows).where(follows.c.id == follow_id,
                                                      follows.c.user_id == user_id)).rowcount > 0

    def mark_seen(self, follow_id: int, user_id: int, mark: int, at: str | None = None) -> None:
        """Seen up to `at` (default now) and the store's change count `mark`, both taken before the look."""
        with self.db.transaction(bump=None) as conn:
            conn.execute(update(follows).where(follows.c.id == follow_id, follows.c.user_id == user_id)
                         .values(seen_at=at or now(), seen_mark=mark))

    # feed tokens ----------------------------------------------------------------------------

    def set_token(self, user_id: int, token_hash: str) -> None:
        """The user's one feed token, replacing any earlier one (whose feeds then stop)."""
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(feed_tokens).where(feed_tokens.c.user_id == user_id))
            conn.execute(insert(feed_tokens).values(user_id=user_id, token_hash=token_hash, created_at=now()))

    def remove_token(self, user_id: int) -> bool:
        with self.db.transaction(bump=None) as conn:
            return conn.execute(delete(feed_tokens).where(feed_tokens.c.user_id == user_id)).rowcount > 0

    def token(self, user_id: int) -> tuple[str, str] | None:
        """(token hash, created at) of the user's feed token, if they have one."""
        with self.db.read() as conn:
            row = conn.execute(select(feed_tokens.c.token_hash, feed_tokens.c.created_at)
                               .where(feed_tokens.c.user_id == user_id)).first()
        return (row[0], row[1]) if row else None

    def token_user(self, token_hash: str) -> User | None:
        """The user a feed token belongs to; None for an unknown or revoked one (or a removed user's)."""
        query = (select(*USER_COLUMNS).join_from(feed_tokens, users, users.c.id == feed_tokens.c.user_id)
                 .where(feed_tokens.c.token_hash == token_hash))
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return User(*row) if row else None

    # the documents a follow looks at --------------------------------------------------------

    def changed_since(self, filters: Filters, since: str) -> list[tuple[int, str]]:
        """(id, updated_at) of the documents `filters` admit that were added or updated at or after `since`."""
        query = (select(documents.c.id, documents.c.updated_at)
                 .where(conditions(filters, dialect=self.db.dialect), documents.c.updated_at >= since)
                 .order_by(documents.c.updated_at.desc(), documents.c.id))
        with self.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

    def recent(self, filters: Filters, limit: int) -> dict[int, tuple[str, str]]:
        """The `limit` most recently added or updated documents `filters` admit: id -> (added_at, updated_at)."""
        query = (select(documents.c.id, documents.c.added_at, documents.c.updated_at)
                 .where(conditions(filters, dialect=self.db.dialect))
                 .order_by(documents.c.updated_at.desc(), documents.c.id.desc()).limit(limit))
        with self.db.read() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(query)}
