"""Passwords: the policy (zxcvbn), `kb user passwd`, and the change-password page."""

from __future__ import annotations

import io
import re
import time

import pytest

from cli import main
from kb import audit
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.errors import BadRequest, NotFound
from kb.passwords import password_problem
from kb.settings import Settings

PASSWORD = "correct horse battery"
NEW = "a new and unguessable passphrase"


@pytest.mark.parametrize("password, name, says", [
    ("password12", "maria", "This is a very common password."),
    (" " * 10, "maria", "cannot be blank or only spaces"),
    ("", "maria", "cannot be blank or only spaces"),
    ("short", "maria", "at least 10 characters"),
    ("x" * 1001, "maria", "at most 1,000 characters"),
    ("maria.lopez", "maria.lopez", "your user name"),
    (" Maria.Lopez ", "maria.lopez", "your user name"),
    ("marialopez12", "maria.lopez", "Avoid “marialopez”"),
    ("qwertyuiop", "maria", "common password"),
    ("iloveyou123", "maria", "similar to a commonly used password"),
    ("healthy communities together", "maria", "words about this site"),
    ("kbkbkbkbkbkb", "maria", "Avoid repeated words and characters."),
])
def test_weak_passwords_are_refused_with_what_to_do(password, name, says):
    problem = password_problem(password, name)
    assert problem and says in problem


@pytest.mark.parametrize("password", [PASSWORD, NEW, "Tr0ub4dor&3 on a Tuesday",
                                      "a long passphrase, " + "with many more words to it " * 35])
def test_long_or_unguessable_passwords_are_accepted(password):
    started = time.perf_counter()
    assert password_problem(password, "maria") is None
    assert time.perf_counter() - started < 2  # a 1,000-character one is judged by its start, not for 40 s


def test_every_way_of_setting_a_password_keeps_the_policy(fake_kb):
    """Accounts.add and set_password refuse a weak password; set_password closes every session."""
    accounts = Accounts(fake_kb.store)
    with pytest.raises(BadRequest, match="very common password"):
        accounts.add("maria.lopez", "partner", "password12")
    user = accounts.add("maria.lopez", "partner", PASSWORD)
    tokens = [accounts.open_session(user.id) for _ in range(2)]
    other = accounts.open_session(accounts.add("bob", "curator", NEW).id)
    with pytest.raises(BadRequest, match="your user name"):
        accounts.set_password("maria.lopez", "Maria.Lopez")
    assert all(accounts.session_user(t) for t in tokens)  # a refused password changes nothing
    assert accounts.set_password("Maria.Lopez", NEW) == 2
    assert [accounts.session_user(t) for t in tokens] == [None, None]
    assert accounts.session_user(other).name == "bob"  # another user's sessions stay
    assert accounts.authenticate("maria.lopez", PASSWORD, "10.0.0.1") is None
    assert accounts.authenticate("maria.lopez", NEW, "10.0.0.1").name == "maria.lopez"
    with pytest.raises(NotFound):
        accounts.set_password("nobody", NEW)


def test_user_passwd_sets_a_new_password_and_signs_the_user_out(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--data", str(tmp_path), "user", "add", "maria", "--role", "partner", "--password-stdin"]) == 0
    settings = Settings(data_dir=tmp_path, model="fake")
    kb = KnowledgeBase.open(settings)
    accounts = Accounts(kb.store)
    token = accounts.open_session(accounts.get("maria").id)
    capsys.readouterr()

    monkeypatch.setattr("sys.stdin", io.StringIO(NEW + "\n"))
    assert main(["--data", str(tmp_path), "user", "passwd", "maria", "--password-stdin"]) == 0
    assert "signed out everywhere (1 session closed)" in capsys.readouterr().out
    assert accounts.session_user(token) is None
    assert accounts.authenticate("maria", NEW, "10.0.0.1").name == "maria"
    entry = audit.entries(kb.store, action="user_passwd")[0]
    assert (entry.actor, entry.target) == ("cli", "maria")

    monkeypatch.setattr("sys.stdin", io.StringIO("password12\n"))
    assert main(["--data", str(tmp_path), "user", "passwd", "maria", "--password-stdin"]) == 1
    assert "error: This password is too easy to guess. This is a very common password." in capsys.readouterr().err
    assert accounts.authenticate("maria", NEW, "10.0.0.1") is not None  # unchanged

    monkeypatch.setattr("sys.stdin", io.StringIO(NEW + "\n"))
    assert main(["--data", str(tmp_path), "user", "passwd", "nobody", "--password-stdin"]) == 1
    assert "error: no user 'nobody'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script, no terminal to ask on
    assert main(["--data", str(tmp_path), "user", "passwd", "maria"]) == 2
    assert "kb user passwd NAME --password-stdin" in capsys.readouterr().err
    kb.close()


@pytest.fixture
def app(tmp_path, model, database_url):
    """An empty collection with one curator and one partner, on each backend in turn."""
    from web import create_app

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        secret_key="a key every node shares" if database_url else "")
    kb = KnowledgeBase.open(settings, model)
    Accounts(kb.store).add("cur", "curator", PASSWORD)
    Accounts(kb.store).add("par", "partner", PASSWORD)
    app = create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
    yield app
    kb.close()


def token(client, url="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def sign_in(app, name="par", password=PASSWORD):
    client = app.test_client()
    response = client.post("/login", data={"name": name, "password": password, "csrf_token": token(client)})
    return client if response.status_code == 302 else None


def change(client, current=PASSWORD, new=NEW, confirm=None, csrf=True):
    form = {"current_password": current, "new_password": new, "confirm_password": new if confirm is None else confirm}
    if csrf:
        form["csrf_token"] = token(client, "/account/password")
    return client.post("/account/password", data=form)


def actions(app) -> list[str]:
    return [e.action for e in audit.entries(app.extensions["kb"].store)]


def test_the_page_asks_for_a_sign_in_and_is_linked_from_the_header(app):
    response = app.test_client().get("/account/password")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/account/password"
    client = sign_in(app)
    assert 'href="/account/password">Change password</a>' in client.get("/").get_data(as_text=True)
    html = client.get("/account/password").get_data(as_text=True)
    for field, autocomplete in [("current_password", "current-password"), ("new_password", "new-password"),
                                ("confirm_password", "new-password")]:
        assert f'<label for="{field}">' in html
        assert re.search(f'<input id="{field}" name="{field}" type="password" autocomplete="{autocomplete}"', html)
    assert 'autocomplete="username" readonly hidden' in html  # tells password managers whose password it is
    assert "There is a problem" not in html and html.count(" autofocus") == 1  # the current password's field
    assert re.search(r'<input id="current_password"[^>]* autofocus>', html)


def test_a_change_without_the_forms_token_is_refused(app):
    client = sign_in(app)
    response = change(client, csrf=False)
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert sign_in(app, "par", PASSWORD) is not None


@pytest.mark.parametrize("form, field, says", [
    ({"current": "not my password"}, "current_password", "That is not your current password."),
    ({"current": ""}, "current_password", "Enter your current password."),
    ({"confirm": NEW + "!"}, "confirm_password", "The two new passwords differ"),
    ({"confirm": ""}, "confirm_password", "Type the new password again."),
    ({"new": "password12"}, "new_password", "This password is too easy to guess. This is a very common password."),
    ({"new": "par.par.par.par"}, "new_password", "This password is too easy to guess."),
    ({"new": PASSWORD}, "new_password", "Choose a password different from your current one."),
])
def test_a_refused_change_says_why_beside_the_field_and_changes_nothing(app, form, field, says):
    client = sign_in(app)
    response = change(client, **form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    error = re.search(f'<p class="field-error" id="{field}-error">(.*?)</p>', html).group(1)
    assert says in error
    assert re.search(f'<input id="{field}"[^>]*aria-describedby="[^"]*{field}-error"[^>]*aria-invalid="true"', html)
    assert '<div class="error-summary" role="alert" aria-labelledby="error-summary-title" tabindex="-1" autofocus>' in html
    assert f'<li><a href="#{field}">' in html
    assert "<title>Error: Change your password" in html
    assert sign_in(app, "par", PASSWORD) is not None and sign_in(app, "par", NEW) is None


def test_wrong_current_passwords_are_throttled_with_sign_in(app):
    """The form checks the current password as sign-in does, counted in the same buckets (this
    browser's own, as it signed in here): once full, the right password is refused too, here and
    on the sign-in page from this browser."""
    client = sign_in(app)
    for _ in range(40):
        response = change(client, current="not my password")
        if response.status_code == 429:
            break
        assert response.status_code == 400
    assert response.status_code == 429 and "too many failed sign-ins" in response.get_data(as_text=True)
    assert change(client).status_code == 429
    again = client.post("/login", data={"name": "par", "password": PASSWORD, "csrf_token": token(client)})
    assert again.status_code == 429  # the sign-in page counts the same failures
    assert {"password_change_failed", "password_change_blocked"} <= set(actions(app))
    assert client.get("/account/password").status_code == 200  # still signed in


def test_a_change_keeps_this_session_and_ends_every_other(app):
    client, elsewhere, curator = sign_in(app), sign_in(app), sign_in(app, "cur")
    response = change(client)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your password has been changed, and you have been signed out everywhere else." in page
    assert "par (partner)" in page
    assert client.get("/account/password").status_code == 200  # this browser, on a renewed session
    assert elsewhere.get("/account/password").status_code == 302  # signed out
    assert curator.get("/account/password").status_code == 200  # another user is not touched
    assert sign_in(app, "par", PASSWORD) is None and sign_in(app, "par", NEW) is not None
    entry = audit.entries(app.extensions["kb"].store, action="password_change")[0]
    assert (entry.actor, entry.target) == ("par", "par")
