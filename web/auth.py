"""Sign in and out."""

from __future__ import annotations


from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from kb import audit
from kb.errors import TooManyAttempts
from kb.passwords import password_problem

from . import access, devices
from .params import local_path

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        store = current_app.extensions["kb"].store
        device = devices.known_device()
        try:
            user = current_app.extensions["accounts"].authenticate(name, password, request.remote_addr or "", device)
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
                response = redirect(local_path(request.form.get("next"), url_for("pages.search")))
                devices.remember(response, device, user.id)
                return response
    return render_template("login.html", error=error, next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    user = access.current_user()
    if user:
        audit.record(current_app.extensions["kb"].store, user.name, "logout", user.name)
        current_app.extensions["accounts"].close_session(session["sid"])
    session.clear()
    return redirect(url_for("pages.search"))


@bp.route("/account/password", methods=["GET", "POST"])
@access.sign_in_required
def change_password():
    """A signed-in user's new password. The current one is checked as a sign-in is, and throttled
    with it, so this form cannot be used to guess it; on success every other session of the user
    is closed and this one renewed."""
    user, errors, status = access.current_user(), {}, 200
    if request.method == "POST":
        accounts, store = current_app.extensions["accounts"], current_app.extensions["kb"].store
        current = request.form.get("current_password") or ""
        new = request.form.get("new_password") or ""
        checked = None
        if not current:
            errors["current_password"] = "Enter your current password."
        else:
            try:
                checked = accounts.authenticate(user.name, current, request.remote_addr or "", devices.known_device())
            except TooManyAttempts as exc:
                audit.record(store, user.name, "password_change_blocked", user.name)
                return render_template("password.html", errors={"current_password": str(exc)}, autofocus=False), 429
            if checked is None:
                audit.record(store, user.name, "password_change_failed", user.name)
                errors["current_password"] = "That is not your current password."
        problem = password_problem(new, user.name)
        if problem or (checked and new == current):
            errors["new_password"] = problem or "Choose a password different from your current one."
        confirm = request.form.get("confirm_password") or ""
        if confirm != new:
            errors["confirm_password"] = ("Type the new password again." if not confirm else
                                          "The two new passwords differ: type the same one in both.")
        if not errors:
            accounts.set_password(user.name, new)  # closes every session of theirs, this one too
            session.clear()
            session["sid"] = accounts.open_session(user.id)
            access.csrf_token()
            audit.record(store, user.name, "password_change", user.name)
            flash("Your password has been changed, and you have been signed out everywhere else.")
            return redirect(url_for("pages.search"))
        status = 400
    return render_template("password.html", errors=errors, autofocus=False), status
