"""Search analytics on the web: searches and opened results recorded (never who asked), readers'
helpful / not helpful marks on results (POST /feedback), and the curators' page (/admin/analytics)."""

from __future__ import annotations

import atexit
import weakref

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from kb.analytics import Analytics
from kb.errors import BadRequest, NotFound, SignInRequired
from kb.models import SearchResult
from kb.query import normalize
from kb.questions import Questions
from kb.search import RELEVANCE_FLOOR
from kb.settings import Settings

from . import access
from .params import WHOLE_NUMBER, local_path

bp = Blueprint("analytics", __name__)
MARKED = "kb_marked"  # the session's note of a mark just given, for the page the reader goes back to


def init_app(app, settings: Settings) -> None:
    analytics = Analytics(app.extensions["kb"].store, settings.analytics, settings.analytics_days)
    app.extensions["analytics"] = analytics
    app.register_blueprint(bp)
    held = weakref.ref(analytics)  # what the last second gathered is written as the server stops
    atexit.register(lambda: (found := held()) is not None and found.flush(5))


def _analytics() -> Analytics:
    return current_app.extensions["analytics"]


def searched(result: SearchResult, offset: int) -> None:
    """Record a web search: its first page only (paging is the same search), and not the page a
    reader comes back to after marking one of its results."""
    if offset == 0 and g.get("marked") is None:
        _analytics().searched(result)


def opened(query: str | None, doc_id: int, ordinal: int | None, passages) -> None:
    """A document page served from a search's result link (`?q=`): recorded, with the passage the
    link pointed at. The caller has checked the reader may see the document."""
    if query and request.method == "GET":
        chunk_id = next((p.id for p in passages if p.ordinal == ordinal), None) if ordinal is not None else None
        _analytics().opened(query, doc_id, chunk_id)


def _current_path() -> str:
    return request.full_path.rstrip("?")


@bp.before_app_request
def take_mark():
    """The mark the reader just gave, if this is the page they came back to (consumed either way)."""
    g.marked = None
    if MARKED in session and request.method == "GET":
        mark = session.pop(MARKED)
        if isinstance(mark, dict) and mark.get("url") == _current_path():
            g.marked = mark


@bp.app_context_processor
def feedback_helpers():
    def marked(chunk_id: int) -> bool | None:
        """True / False: the reader has just marked this passage helpful / not helpful here."""
        mark = g.get("marked")
        return mark["helpful"] if mark and mark.get("chunk_id") == chunk_id else None

    return {"feedback_on": _analytics().enabled, "marked": marked}


def _number(name: str, required: bool = True) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw and not required:
        return None
    if len(raw) > 19 or not WHOLE_NUMBER.fullmatch(raw) or not 0 < int(raw) < 2**63:
        raise BadRequest(f"{name} must be a passage's number" if name == "chunk_id" else f"{name} must be a number")
    return int(raw)


@bp.post("/feedback")
def feedback():
    """A signed-in reader marks a passage they may see helpful or not; they go back where they
    were, to the passage, with a thank-you. The mark keeps the query, never who gave it."""
    if access.current_user() is None:
        raise SignInRequired("sign in to mark results helpful or not")
    analytics = _analytics()
    if not analytics.enabled:
        raise NotFound("feedback on results is turned off on this site")
    helpful = request.form.get("helpful")
    if helpful not in ("1", "0"):
        raise BadRequest("helpful must be 1 (helpful) or 0 (not helpful)")
    chunk_id = _number("chunk_id")
    question_id = _number("question_id", required=False)
    query = normalize(request.form.get("q") or "")
    if not query:
        raise BadRequest("the search the passage was found by is missing")
    kb = current_app.extensions["kb"]
    row = kb.store.chunk_rows([chunk_id]).get(chunk_id)
    if row is None or row.status != "active" or row.visibility not in access.visibility():
        raise NotFound(f"no passage {chunk_id}")
    questions = Questions(kb)
    if question_id is not None and questions.get(question_id).status != "active" and not access.is_curator():
        raise NotFound(f"no question {question_id}")  # as its page is; one not there is a 404 from get()
    analytics.feedback(query, row.doc_id, chunk_id, helpful == "1", question_id)
    if question_id is not None and helpful == "1":
        # evidence for the question, unless a curator has judged the passage (judge keeps theirs), and
        # only for a passage the question's page offers this reader: a mark cannot pin just any passage;
        # as reader feedback, without the reader's name, so that the mark cannot be traced to them
        offered = questions.evidence(current_app.extensions["searcher"], question_id, access.visibility())
        if chunk_id in {hit.chunk_id for hit in offered.all_hits()}:
            questions.judge(question_id, chunk_id, "evidence", by="reader feedback", source="feedback")
    back = local_path(request.form.get("next"), url_for("pages.search"))
    session[MARKED] = {"url": back, "chunk_id": chunk_id, "helpful": helpful == "1"}
    return redirect(f"{back}#feedback-{chunk_id}")


@bp.get("/admin/analytics")
@access.curator_required
def report():
    """What is searched, week by week; what finds nothing or only weak matches; what is opened;
    readers' feedback beside each query."""
    raw = request.args.get("days") or ""
    analytics = _analytics()
    days = int(raw) if raw.isdigit() and 0 < int(raw) <= analytics.keep_days else analytics.keep_days
    return render_template("admin/analytics.html", tab="analytics", report=analytics.report(days),
                           recording=analytics.enabled, keep_days=analytics.keep_days, floor=RELEVANCE_FLOOR)
