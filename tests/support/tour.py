"""Every page of the site as each kind of visitor meets it: the accessibility tests
(tests/test_accessibility.py) check each stop with axe-core, and tests/support/screenshots.py
photographs each one, so the two never disagree about what "every page" means."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote_plus

ROLES = ("anonymous", "partner", "curator")
WIDTHS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
PASSWORD = "lantern meadow copper violin"  # passes kb's password policy; every tour account has it
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
QUESTION = "what have sites learned about volunteers?"


@dataclass(frozen=True)
class Stop:
    """One page: where it is, who visits it (the first one is photographed), anything to do on it
    first (send a form with mistakes, to see its error state), and the endpoint it needs, for pages
    of features an app may not have."""

    name: str
    path: str
    roles: tuple[str, ...] = ROLES
    then: Callable | None = None
    needs: str | None = None


@dataclass(frozen=True)
class Furnished:
    doc_id: int  # a public document with several passages
    ordinal: int  # the passage of it a search would highlight
    theme_id: int
    question_id: int | None  # a learning question, where the collection has them


def furnish(kb) -> Furnished:
    """Accounts for each role and jobs in each finished state, on a collection holding the corpus."""
    from kb.accounts import Accounts
    from kb.jobs import Jobs
    from kb.models import Filters

    accounts = Accounts(kb.store)
    for role in ROLES[1:]:
        accounts.add(role, role, PASSWORD)
    docs = kb.store.documents(Filters(visibility=("public",)), sort="id", limit=100)
    doc = next(d for d in docs if d.site == "Plymouth" and d.doc_type == "learning-report")  # a PDF, with pages
    jobs = Jobs(kb.store)
    done = jobs.create("upload", "curator", "befriending-plymouth.pdf")
    jobs.update(done.id, status="done", progress=100, message="ingested: 4 passages", doc_id=doc.id)
    failed = jobs.create("upload", "curator", "scan-only.pdf")
    jobs.update(failed.id, status="failed", progress=10, message="no text could be read: the PDF is scanned images")
    twin = jobs.create("upload", "curator", "profile-plymouth-copy.md")
    jobs.update(twin.id, status="needs_decision", progress=50, message="the same text as a document already here",
                duplicate_of=doc.id)
    ordinal = kb.store.chunks_of(doc.id)[1].ordinal
    question_id = None
    if hasattr(kb.store, "questions"):
        from kb.questions import Questions

        question_id = Questions(kb).add("How do volunteers stay involved?", "What keeps volunteers coming back.",
                                        by="curator").id
    return Furnished(doc_id=doc.id, ordinal=ordinal, theme_id=1, question_id=question_id)  # themes: built by /themes, from 1


def _submit_wrong_password(page):
    page.fill("#name", "partner")
    page.fill("#password", "not the password")
    page.press("#password", "Enter")
    page.wait_for_load_state()


def _submit_empty_password_form(page):
    page.click("form.card button[type=submit]")
    page.wait_for_load_state()


def stops(f: Furnished, endpoints=None) -> list[Stop]:
    """The tour; given the app's endpoints (`app.view_functions`), only the stops it can show."""
    question = quote_plus(QUESTION)
    signed_in = ("partner", "curator")
    tour = [
        Stop("overview", "/"),
        Stop("search", f"/?q={question}"),
        Stop("search-filtered", f"/?q={question}&site=Plymouth&tag=volunteers"),
        Stop("search-passages", f"/?q={question}&group=passage&page=2"),
        Stop("search-nothing", "/?q=xylophone+quasar+zeppelin"),
        Stop("document", f"/doc/{f.doc_id}?hl={f.ordinal}#chunk-{f.ordinal}"),
        Stop("across", f"/across?q={question}"),
        Stop("across-empty", "/across"),
        Stop("themes", "/themes"),
        Stop("theme", f"/themes/{f.theme_id}"),
        Stop("site", "/site/Plymouth"),
        Stop("login", "/login"),
        Stop("login-error", "/login", ("anonymous",), _submit_wrong_password),
        Stop("password", "/account/password", (*signed_in, "anonymous")),
        Stop("password-errors", "/account/password", signed_in, _submit_empty_password_form),
        Stop("not-found", "/no/such/page"),
        Stop("document-not-found", "/doc/987654"),
        Stop("accessibility", "/accessibility"),
        Stop("admin-documents", "/admin/documents", ("curator",)),
        Stop("admin-edit", f"/admin/documents/{f.doc_id}", ("curator",)),
        Stop("admin-upload", "/admin/upload", ("curator",)),
        Stop("admin-jobs", "/admin/jobs", ("curator",)),
        Stop("admin-audit", "/admin/audit", ("curator",)),
        Stop("admin-forbidden", "/admin/documents", ("partner", "anonymous")),
        Stop("questions", "/questions", ("curator", "partner", "anonymous"), needs="questions.question_list"),
        Stop("question", f"/questions/{f.question_id}", ("curator", "partner", "anonymous"), needs="questions.question"),
        Stop("follows", "/account/follows", signed_in, needs="follows.mine"),
        Stop("feed", "/account/feed", signed_in, needs="follows.feed_token"),
        Stop("admin-analytics", "/admin/analytics", ("curator",), needs="analytics.report"),
    ]
    return [s for s in tour if s.needs is None or (endpoints is not None and s.needs in endpoints
                                                    and (s.name != "question" or f.question_id))]


def sign_in(page, base: str, role: str) -> None:
    """Sign in through the form, as a person would; an anonymous visitor stays as they are."""
    if role == "anonymous":
        return
    page.goto(base + "/login")
    page.fill("#name", role)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(base + "/")


@contextmanager
def serving(app):
    """The app on a free loopback port, in this process, for as long as the block runs."""
    from waitress import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(5)
