"""The known-device cookie: a browser's own id and the users who signed in on it, signed with the
app's secret key, so that sign-in throttling can tell an account's owner from a stranger
(kb/throttle.py)."""

from __future__ import annotations

import secrets

from flask import current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

from kb.accounts import Device

COOKIE = "kb_device"
DEVICE_SECONDS = 365 * 24 * 3600  # a browser stays known for a year after its last sign-in
MOST_USERS = 8  # users one browser remembers, the latest first


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="kb known device")


def known_device() -> Device | None:
    """This browser's device, when its cookie is one this site signed within the year."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _signer().loads(raw, max_age=DEVICE_SECONDS)
        return Device(str(data["id"]), tuple(int(u) for u in data["users"]))
    except (BadData, KeyError, TypeError, ValueError):
        return None


def remember(response, device: Device | None, user_id: int) -> None:
    """After `user_id` signed in: set the cookie, this user first, the browser's id kept."""
    users = (user_id, *(u for u in (device.users if device else ()) if u != user_id))[:MOST_USERS]
    value = _signer().dumps({"id": device.id if device else secrets.token_urlsafe(16), "users": users})
    # the whole site: sign-in and the change-password form both tell the owner from a stranger by it
    response.set_cookie(COOKIE, value, max_age=DEVICE_SECONDS, path="/", httponly=True,
                        samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])
