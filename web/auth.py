"""Sign in and out."""

from __future__ import annotations


from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from kb import audit
from kb.errors import TooManyAttempts

from . import access
from .params import local_path

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        store = current_app.extensions["kb"].store
        try:
            user = current_app.extensions["accounts"].authenticate(name, password, request.remote_addr or "")
        except TooManyAttempts as exc:
            audit.record(store, f"anonymous@{request.remote_addr}", "login_blocked", name)
            error, status = str(exc), 429
        else:
            if user is None:
                audit.record(store, f"anonymous@{request.remote_addr}", "login_failed", name)
                error, status = "That name and password do not match.", 401
            else:
                session.clear()
                session["sid"] = current_app.extensions["accounts"].open_session(user.id)
                access.csrf_token()
                audit.record(store, user.name, "login", user.name)
                flash(f"Signed in as {user.name} ({user.role}).")
                return redirect(local_path(request.form.get("next"), url_for("pages.search")))
    return render_template("login.html", error=error, next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    user = access.current_user()
    if user:
        audit.record(current_app.extensions["kb"].store, user.name, "logout", user.name)
        current_app.extensions["accounts"].close_session(session["sid"])
    session.clear()
    return redirect(url_for("pages.search"))
