"""What browsers and shared caches may keep of a response.

Visibility can change at any moment (a curator restricts a document, an account is removed), so no
cache may answer for the server on its own:
- anything a signed-in user is shown, and every answer that depends on who asks (the API, health,
  sign-in, account and curator pages, a follow's feed, errors and redirects), is `private, no-store`;
- the pages and public originals anyone may see are `no-cache` with an ETag: a cache may keep them
  but must ask again before each use, so the visibility check runs every time, and an unchanged
  answer costs a 304 without a body;
- static assets are the same for everyone and keep Flask's own headers.
Every response but a static asset varies by Cookie, as the session decides what it holds.
"""

from __future__ import annotations

from flask import Response, request, session

from . import access

PRIVATE = "private, no-store"
PRIVATE_PATHS = ("/admin", "/login", "/logout", "/account", "/api/", "/healthz", "/feeds/")
SHARED_API = ("/api/openapi.json",)  # the same for every reader


def cache_policy(response: Response) -> Response:
    if request.endpoint == "static":
        return response
    response.vary.add("Cookie")
    private = (access.current_user() is not None or "sid" in session or session.modified
               or (request.path.startswith(PRIVATE_PATHS) and request.path not in SHARED_API)
               or request.method not in ("GET", "HEAD") or response.status_code not in (200, 206, 304))
    if private:
        response.headers["Cache-Control"] = PRIVATE
        response.headers.pop("Expires", None)
        return response
    response.headers["Cache-Control"] = "no-cache"
    if not response.direct_passthrough and not response.is_streamed and response.status_code == 200:
        response.add_etag()  # send_file's responses have theirs, and answer conditional requests themselves
        response.make_conditional(request)
    return response
