"""The web app: search page, document pages and JSON API over one knowledge base.

`create_app` opens the model, store and index once; nothing is opened at import time.
"""

from __future__ import annotations

import secrets

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.collection import KnowledgeBase
from kb.errors import KbError
from kb.search import Searcher
from kb.settings import Settings

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(settings: Settings | None = None, test_config: dict | None = None, kb: KnowledgeBase | None = None) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False
    app.config.from_mapping(
        SECRET_KEY=secrets.token_hex(32),
        MAX_CONTENT_LENGTH=(settings.max_file_mb if settings else 50) * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if test_config:
        app.config.update(test_config)
    settings = settings or Settings.from_env()
    kb = kb or KnowledgeBase.open(settings)
    kb.embedder.model  # load the model at start, not on the first visitor's search
    kb.refresh()
    app.extensions["kb"] = kb
    app.extensions["searcher"] = Searcher(kb)

    from . import api, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    _register_errors(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", documents=kb.store.count(), vectors=kb.index.count())

    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _register_errors(app: Flask) -> None:
    """One JSON error shape for the API, one error page for HTML: domain and HTTP errors alike."""

    def render(status: int, code: str, message: str):
        if _wants_json():
            return jsonify(error={"code": code, "message": message}), status
        return render_template("error.html", status=status, message=message, autofocus=False), status

    @app.errorhandler(KbError)
    def kb_error(exc: KbError):
        return render(exc.status, exc.code, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return render(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return render(500, "internal_error", "Something went wrong on our side; the error has been logged.")
