"""Who is asking: the signed-in user (if any), what they may see, CSRF tokens, role checks."""

from __future__ import annotations

import functools
import hmac
import secrets

from flask import current_app, g, redirect, request, session, url_for

from kb.accounts import User
from kb.errors import BadRequest, Forbidden, SignInRequired

PUBLIC = ("public",)
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def load_user() -> None:
    """Before each request: the user of the session, if it is still open on the server, or None."""
    token = session.get("sid")
    g.user = current_app.extensions["accounts"].session_user(token) if isinstance(token, str) else None
    if "sid" in session and g.user is None:
        session.clear()


def current_user() -> User | None:
    return g.get("user")


def is_curator() -> bool:
    user = current_user()
    return user is not None and user.role == "curator"


def visibility() -> tuple[str, ...]:
    """Visibilities the current visitor may read: anonymous visitors see public documents only."""
    user = current_user()
    return user.visibility() if user else PUBLIC


def actor() -> str:
    user = current_user()
    return user.name if user else f"anonymous@{request.remote_addr}"


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Every state-changing request carries the session's token (form field or X-CSRF-Token)."""
    if request.method not in UNSAFE_METHODS or request.routing_exception is not None:
        return  # a wrong method or address gets its own 405 or 404
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        raise BadRequest("the form's security token is missing or out of date; reload the page and try again")


def check_anonymous_search() -> None:
    if current_app.config.get("ANONYMOUS_SEARCH", True) or current_user():
        return
    if request.endpoint in ("auth.login", "auth.logout", "static", "healthz", "api.openapi", "follows.feed"):
        return
    raise SignInRequired("sign in to search this collection")


def sign_in_required(view):
    """Visitors who have not signed in go to the sign-in page, and come back here after."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapped


def curator_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if user.role != "curator":
            raise Forbidden("only curators may do this")
        return view(*args, **kwargs)
    return wrapped


def redact_hits(hits: list[dict]) -> list[dict]:
    """Hits as JSON for this visitor: sources, and those of the copies folded into a hit, shown
    as `shown_source` allows."""
    for hit in hits:
        hit["source"] = shown_source(hit["source"])
        for other in hit.get("also_in", []):
            other["source"] = shown_source(other["source"])
    return hits


def site_base() -> str:
    """The site's address for links read elsewhere (exports, packs, feeds): KB_PUBLIC_URL when set,
    so a request's Host header never decides it; else the request's own."""
    return current_app.config.get("PUBLIC_URL") or request.host_url


def shown_source(source: str) -> str:
    """Where a document came from, as this visitor may see it: curators get the full source,
    others only the file name, never a path on the server."""
    if "curators" in visibility() or not source.startswith("/"):
        return source
    return source.rsplit("/", 1)[-1]
