"""Follows: a user keeps up with a learning question or a saved search (query and filters).

A passage is new to a follow when its document was added or updated after the follow's `seen_at`
(the user's last look at it) and it matches the follow as that user may see it now. Stored times
keep whole seconds, so a document updated within the very second of a look counts as new only if
the store has changed since that look (its change count, `seen_mark`): nothing that arrives just
after a look is lost, at the cost of a rare passage shown as new twice.

Each user may have one secret feed token (only its hash is kept); with it, every follow of theirs
is an Atom feed of the latest matching passages, computed as that user, now.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from . import feeds
from .collection import KnowledgeBase, text_hash
from .errors import BadRequest, NotFound
from .export import passage_link
from .models import Filters, Follow, Hit, User
from .questions import Questions
from .search import MAX_K, Searcher, validate
from .storage.database import now

MAX_FOLLOWS = 50  # a user's follows; each costs a search when the collection changes
FEED_DOCUMENTS = 200  # a feed looks at the most recently added or updated documents only...
FEED_ENTRIES = 50  # ...and lists this many of their matching passages, newest document first
FEED_PER_DOCUMENT = 3  # so that one long report does not fill a feed
NEWS_SECONDS = 60  # how long a user's new-passage counts are kept while nothing changes
NEWS_USERS = 1000  # users whose counts are kept at once
SITE_NAME = "HCT learning library"


@dataclass(frozen=True)
class Watch:
    """What a follow searches for: a query, its filters (visibility aside) and mode, and the
    passages it leaves out (a question's "not evidence")."""

    query: str
    filters: Filters
    mode: str = "hybrid"
    hidden: frozenset[int] = frozenset()


@dataclass(frozen=True)
class FeedItem:
    hit: Hit
    added_at: str
    updated_at: str


def search_params(filters: Filters, mode: str) -> dict[str, list[str]]:
    """A saved search's filters and mode as the search page's parameters, only those set."""
    params = {"site": filters.site, "type": filters.doc_type, "tag": filters.tag,
              "year": [str(y) for y in filters.year], "from": [filters.date_from] if filters.date_from else [],
              "to": [filters.date_to] if filters.date_to else [], "mode": [mode] if mode != "hybrid" else []}
    return {name: list(values) for name, values in params.items() if values}


def params_filters(params: dict[str, list[str]]) -> Filters:
    """Filters from saved parameters (checked when the search was followed)."""
    def first(name: str) -> str | None:
        return (params.get(name) or [None])[0]

    return Filters(site=list(params.get("site", [])), doc_type=list(params.get("type", [])),
                   tag=list(params.get("tag", [])), year=[int(y) for y in params.get("year", [])],
                   date_from=first("from"), date_to=first("to"))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _same_search(follows: list[Follow], query: str, filters: Filters, mode: str) -> Follow | None:
    params = search_params(filters, mode)
    return next((f for f in follows if f.question_id is None and f.query == query and f.params == params), None)


class Follows:
    """Follows, their new passages and feeds, for the web app."""

    def __init__(self, kb: KnowledgeBase, searcher: Searcher, clock: Callable[[], float] = time.monotonic):
        self.kb = kb
        self.searcher = searcher
        self.rows = kb.store.follows
        self.questions = Questions(kb)
        self.clock = clock
        self._news: OrderedDict[int, tuple[tuple, float, dict[int, int]]] = OrderedDict()
        self._lock = threading.Lock()

    # following ------------------------------------------------------------------------------

    def follow_search(self, user: User, query: str, filters: Filters, mode: str = "hybrid") -> Follow:
        """Follow a search; following the same one again gives the follow it already has."""
        query = validate(query, 1, mode)
        mine = self.rows.of_user(user.id)
        same = _same_search(mine, query, filters, mode)
        if same:
            return same
        self._room(mine)
        return self.rows.add(user.id, None, query, search_params(filters, mode), self._mark())

    def follow_question(self, user: User, question_id: int) -> Follow:
        question = self.questions.get(question_id)
        if question.status != "active":
            if user.role != "curator":  # to others an archived question does not exist
                raise NotFound(f"no question {question_id}")
            raise BadRequest("this question is archived: it can no longer be followed")
        mine = self.rows.of_user(user.id)
        same = next((f for f in mine if f.question_id == question_id), None)
        if same:
            return same
        self._room(mine)
        return self.rows.add(user.id, question_id, "", {}, self._mark())

    def _room(self, mine: list[Follow]) -> None:
        if len(mine) >= MAX_FOLLOWS:
            raise BadRequest(f"you follow {len(mine)} questions and searches, the most one person may; "
                             "unfollow one first")

    def unfollow(self, user: User, follow_id: int) -> None:
        if not self.rows.remove(follow_id, user.id):
            raise NotFound(f"you do not follow {follow_id}")

    def of(self, user: User) -> list[Follow]:
        """The user's follows, less those of questions archived since (curators still see theirs)."""
        return [f for f in self.rows.of_user(user.id) if self._open_to(user, f)]

    def get(self, user: User, follow_id: int) -> Follow:
        """One of the user's follows; NotFound for anyone else's, as for one that does not exist, and
        for a non-curator's follow of a question archived since."""
        follow = self.rows.get(follow_id, user.id)
        if follow is None or not self._open_to(user, follow):
            raise NotFound(f"no follow {follow_id}")
        return follow

    def _open_to(self, user: User, follow: Follow) -> bool:
        if follow.question_id is None or user.role == "curator":
            return True
        return self.questions.get(follow.question_id).status == "active"

    def find_search(self, user: User, query: str, filters: Filters, mode: str) -> Follow | None:
        return _same_search(self.rows.of_user(user.id), query, filters, mode)

    def find_question(self, user: User, question_id: int) -> Follow | None:
        return next((f for f in self.rows.of_user(user.id) if f.question_id == question_id), None)

    def title(self, follow: Follow) -> str:
        return self.questions.get(follow.question_id).text if follow.question_id else follow.query

    def watch(self, follow: Follow) -> Watch:
        if follow.question_id is None:
            return Watch(follow.query, params_filters(follow.params), (follow.params.get("mode") or ["hybrid"])[0])
        question = self.questions.get(follow.question_id)
        hidden = frozenset(i for i, verdict in self.questions.verdicts(question.id).items() if verdict != "evidence")
        return Watch(question.text, replace(question.filters(()), visibility=Filters().visibility), hidden=hidden)

    # what is new ------------------------------------------------------------------------------

    def _mark(self) -> int:
        return sum(self.kb.store.revision())

    def _fresh(self, follow: Follow, changed: list[tuple[int, str]], mark: int) -> list[int]:
        """The documents among `changed` ((id, updated_at)) that are new to this follow."""
        return [doc for doc, at in changed
                if at > follow.seen_at or (at == follow.seen_at and mark != follow.seen_mark)]

    def _search_new(self, user: User, follow: Follow, docs: list[int], count_only: bool = False):
        """The search of a follow over the documents `docs`, and its hits the follow does not hide.
        To count, one hit is enough, unless hidden passages must be taken off."""
        watch = self.watch(follow)
        filters = replace(watch.filters, visibility=user.visibility(), doc_ids=docs)
        k = 1 if count_only and not watch.hidden else MAX_K
        result = self.searcher.search(watch.query, k=k, filters=filters, mode=watch.mode)
        return result, [h for h in result.hits if h.chunk_id not in watch.hidden]

    def news(self, user: User) -> dict[int, int]:
        """New passages per follow of the user. Kept while neither the collection nor their follows
        change, for NEWS_SECONDS at most (a question's judgements and edits show within that)."""
        mine = self.rows.of_user(user.id)
        if not mine:
            return {}
        revision = self.kb.store.revision()
        key = (revision, user.role, tuple((f.id, f.seen_at, f.seen_mark) for f in mine))
        with self._lock:
            kept = self._news.get(user.id)
            if kept and kept[0] == key and self.clock() - kept[1] < NEWS_SECONDS:
                self._news.move_to_end(user.id)
                return kept[2]
        mark = sum(revision)
        changed = self.rows.changed_since(Filters(visibility=user.visibility()), min(f.seen_at for f in mine))
        counts = {}
        for follow in mine:
            docs = self._fresh(follow, changed, mark)
            if not docs:
                counts[follow.id] = 0
                continue
            result, hits = self._search_new(user, follow, docs, count_only=True)
            counts[follow.id] = max(0, result.passages - (len(result.hits) - len(hits)))
        with self._lock:
            self._news[user.id] = (key, self.clock(), counts)
            self._news.move_to_end(user.id)
            while len(self._news) > NEWS_USERS:
                self._news.popitem(last=False)
        return counts

    def new_hits(self, user: User, follow: Follow) -> list[Hit]:
        """The follow's new passages, best first."""
        changed = self.rows.changed_since(Filters(visibility=user.visibility()), follow.seen_at)
        docs = self._fresh(follow, changed, self._mark())
        return self._search_new(user, follow, docs)[1] if docs else []

    def look(self, user: User, follow: Follow) -> list[Hit]:
        """The follow's new passages, which this look marks seen: as of its start, so that a
        document changed while it searched is still new next time."""
        at, mark = now(), self._mark()
        hits = self.new_hits(user, follow)
        self.rows.mark_seen(follow.id, user.id, mark, at)
        return hits

    def seen(self, user: User, follow: Follow) -> None:
        """The user has looked at the follow: only later passages are new."""
        self.rows.mark_seen(follow.id, user.id, self._mark())

    # feeds ----------------------------------------------------------------------------------

    def feed(self, user: User, follow: Follow) -> list[FeedItem]:
        """The follow's latest matching passages as `user` may see them now: among the FEED_DOCUMENTS
        most recently added or updated documents its filters admit, newest document first."""
        watch = self.watch(follow)
        filters = replace(watch.filters, visibility=user.visibility())
        recent = self.rows.recent(filters, FEED_DOCUMENTS)
        if not recent:
            return []
        result = self.searcher.search(watch.query, k=MAX_K, filters=replace(filters, doc_ids=sorted(recent)),
                                      mode=watch.mode)
        per_document: Counter = Counter()
        items = []
        for hit in result.hits:
            if hit.chunk_id in watch.hidden:
                continue
            per_document[hit.doc_id] += 1
            if per_document[hit.doc_id] <= FEED_PER_DOCUMENT:
                items.append(FeedItem(hit, *recent[hit.doc_id]))
        items.sort(key=lambda item: item.updated_at, reverse=True)  # stable: by rank within a document
        return items[:FEED_ENTRIES]

    def atom(self, user: User, follow: Follow, base_url: str, self_link: str, alternate: str) -> bytes:
        """The follow's feed as an Atom document, its links on the site at `base_url`."""
        title = self.title(follow)
        entries = [feeds.Entry(
            id=feeds.tag_uri(base_url, item.added_at, f"doc/{item.hit.doc_id}/passage/{text_hash(item.hit.text)[:16]}"),
            title=item.hit.title + (f" (page {item.hit.page})" if item.hit.page else ""),
            updated=item.updated_at, published=item.added_at, link=passage_link(base_url, item.hit),
            summary=feeds.plain(item.hit.snippet), author=item.hit.site or SITE_NAME, category=item.hit.site)
            for item in self.feed(user, follow)]
        return feeds.atom(feeds.Feed(
            id=feeds.tag_uri(base_url, follow.created_at, f"follow/{follow.id}"), title=f"{title} · {SITE_NAME}",
            subtitle=f"Passages on “{title}”, newest documents first, as {user.name} may see them.",
            updated=max([e.updated for e in entries] + [follow.created_at]), self_link=self_link,
            alternate=alternate, author=SITE_NAME), entries)

    def new_token(self, user: User) -> str:
        """A new feed token for the user (shown to them once; only its hash is kept). Any earlier
        one stops working."""
        token = secrets.token_urlsafe(32)
        self.rows.set_token(user.id, token_digest(token))
        return token

    def revoke_token(self, user: User) -> bool:
        return self.rows.remove_token(user.id)

    def token_made(self, user: User, token: str | None = None) -> str | None:
        """When the user's feed token was made (None without one); with `token`, only if it is that one."""
        found = self.rows.token(user.id)
        if found is None or (token is not None and found[0] != token_digest(token)):
            return None
        return found[1]

    def token_user(self, token: str) -> User:
        """The user whose feed token this is; NotFound for a wrong, revoked or removed user's token."""
        user = self.rows.token_user(token_digest(token)) if 20 <= len(token) <= 100 else None
        if user is None:
            raise NotFound("no such feed")
        return user
