"""The web app: search page, document pages and JSON API over one knowledge base.

`create_app` opens the model, store and index once; nothing is opened at import time.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, jsonify, make_response, render_template, request, session
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter
from werkzeug.sansio.utils import host_is_trusted

from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.errors import BadRequest, ConfigError, DatabaseUnavailable, KbError
from kb.jobs import Jobs
from kb.models import Filters
from kb.search import Searcher
from kb.settings import Settings
from kb.storage import private

from . import access
from .caching import cache_policy
from .params import check_query_string
from .proxies import TrustedProxies

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")



class StoredId(IntegerConverter):
    """`<int:...>` in routes: a number SQLite can hold, so a larger one is a plain 404."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(settings: Settings | None = None, test_config: dict | None = None, kb: KnowledgeBase | None = None) -> Flask:
    settings = settings or Settings.from_env()
    if settings.database_url and not settings.secret_key:
        raise ConfigError("with KB_DATABASE_URL, set KB_SECRET_KEY: every web node must sign sign-in cookies "
                          "with the same key, and a node keeps nothing of its own")
    kb = kb or KnowledgeBase.open(settings)
    app = Flask(__name__)
    app.url_map.converters["int"] = StoredId
    if settings.trusted_proxies:
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.proxy_networks)
    app.json.sort_keys = False
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key or _secret_key(kb.data_dir),
        MAX_CONTENT_LENGTH=settings.max_file_mb * 1024 * 1024 + 64 * 1024,  # one file and its form

        MAX_FILE_MB=settings.max_file_mb,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PUBLIC_URL=settings.public_url,
        CONTACT_EMAIL=settings.contact_email.strip(),  # the accessibility statement's contact
        ANONYMOUS_SEARCH=settings.anonymous_search,
        START_WORKER=True,
    )
    if test_config:
        app.config.update(test_config)
    kb.embedder.warm()  # load the query encoder at start, not on the first visitor's search
    kb.refresh()
    app.extensions["kb"] = kb
    app.extensions["searcher"] = Searcher(kb)
    app.extensions["accounts"] = Accounts(kb.store)
    app.extensions["jobs"] = Jobs(kb.store)

    from . import admin, api, auth, learning, pages
    from . import questions
    from . import analytics
    from .admin import MAX_UPLOAD_FILES
    from .worker import Worker

    worker = Worker(kb, app.extensions["jobs"])
    app.extensions["worker"] = worker
    if app.config["START_WORKER"]:
        worker.start()

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(learning.bp)
    app.register_blueprint(questions.bp)
    analytics.init_app(app, settings)  # search analytics and feedback (web/analytics.py)
    _register_errors(app)

    db = kb.store.db

    public_host = urlsplit(settings.public_url).hostname

    @app.before_request
    def public_host_only():
        """With KB_PUBLIC_URL, a request naming another host is refused before any work; /healthz
        answers whatever the Host, as load balancers ask nodes by address."""
        if public_host and request.endpoint != "healthz" and not host_is_trusted(request.host, [public_host]):
            raise BadRequest(f"this site answers as {public_host}, not {request.host}")

    @app.before_request
    def choose_reader():
        """Pages and searches read from the replica, if any, unless this visitor wrote something
        it has not replayed yet (their next page must show their own change)."""
        db.take_write()
        if db.replica is None:
            return
        fresh = request.method in ("GET", "HEAD")
        if fresh and "kb_wal" in session:
            fresh = db.replica_has(session["kb_wal"])
            if fresh:
                session.pop("kb_wal")
        db.read_from_replica(fresh)

    @app.teardown_request
    def back_to_the_primary(_exc):
        db.read_from_replica(False)  # this thread's next work (not a request, maybe) reads the primary

    @app.after_request
    def remember_write(response):
        if db.replica is not None and db.take_write():
            try:
                session["kb_wal"] = db.primary_position()
            except DatabaseUnavailable:
                pass
        return response

    @app.before_request
    def who_and_csrf():
        access.load_user()
        if request.endpoint == "admin.upload" and access.is_curator():
            # a curator's upload form may carry several files at the size limit; each is checked on its own
            request.max_content_length = MAX_UPLOAD_FILES * app.config["MAX_CONTENT_LENGTH"]
        access.check_csrf()
        access.check_anonymous_search()

    @app.before_request
    def bounded_query_string():
        """Any route: a query string within what a page or API call needs (web/params.py)."""
        check_query_string(request.args)

    app.after_request(cache_policy)  # what browsers and shared caches may keep (web/caching.py)

    @app.context_processor
    def template_helpers():
        return {"csrf_token": access.csrf_token, "current_user": access.current_user(),
                "export_links": learning.export_links, "Markup": Markup}

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/healthz")
    def healthz():
        """This node, and whether its database answers and takes writes: "ok", "read-only" (reads
        still answered, by a replica or a server in recovery) or "unavailable" (503, for a load
        balancer). Counts only of what this visitor may see; the replica's lag and the index
        count for curators."""
        visibility = access.visibility()
        curator = "curators" in visibility
        database = db.health(replica=True)
        replica = database.pop("replica", None)
        reads = database["reachable"] or bool(replica and replica["reachable"])
        health = {"status": "ok" if database["writable"] else "read-only" if reads else "unavailable",
                  "node": settings.node_name or f"{socket.gethostname()}:{os.getpid()}", "database": database}
        if curator and replica is not None:
            health["replica"] = replica
        if not reads:
            return jsonify(health), 503
        if not database["reachable"]:
            db.read_from_replica(True)
        health["documents"] = kb.store.count_documents(Filters(visibility=visibility))
        if curator:
            health["vectors"] = kb.index.count()
        return jsonify(health)

    from . import follows, packs
    follows.init_app(app)  # follows and their Atom feeds (web/follows.py)
    app.register_blueprint(packs.bp)  # evidence packs of learning questions (web/packs.py)
    return app


def _secret_key(data_dir: Path) -> str:
    """A session key kept in the data folder, so sign-ins survive a restart."""
    path = Path(data_dir) / "secret.key"
    private.restrict(path, private.FILE_MODE)  # as an older kb may have left it
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _register_errors(app: Flask) -> None:
    """One JSON error shape for the API, one error page for HTML: domain and HTTP errors alike."""
    from .admin import MAX_UPLOAD_FILES

    def render(status: int, code: str, message: str):
        if _wants_json():
            return jsonify(error={"code": code, "message": message}), status
        return render_template("error.html", status=status, message=message, autofocus=False), status

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable):
        # the server's address stays in the log; a visitor learns only that trying again may work
        app.logger.warning("%s", exc)
        response = make_response(render(503, exc.code, "The database is unavailable just now; please try again in a moment."))
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(KbError)
    def kb_error(exc: KbError):
        return render(exc.status, exc.code, str(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return render(413, "too_large", f"The upload is larger than the limit of {app.config['MAX_FILE_MB']} MB"
                      f" a file, {MAX_UPLOAD_FILES} files at a time.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = make_response(render(exc.code or 500, code, exc.description or exc.name))
        for name, value in exc.get_headers():  # a 405's Allow, a 401's WWW-Authenticate...
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return render(500, "internal_error", "Something went wrong on our side; the error has been logged.")
