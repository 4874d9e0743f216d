"""Learning questions: the list, each question's evidence per site over time, the curators'
judgements, and the JSON API. Everyone reads active questions with what they may see; curators
write (and alone see archived questions)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for

from kb import audit
from kb.errors import BadRequest, InvalidField, NotFound
from kb.models import VISIBILITIES, Filters
from kb.questions import DESCRIPTION_LIMIT, PROGRAMME, TEXT_LIMIT, Question, Questions

from . import access
from .params import _int

bp = Blueprint("questions", __name__)
PER_SITE_RANGE = (1, 10)  # passages per site a page or API call shows
VERDICTS = {"evidence": "evidence", "not_evidence": "not_evidence", "clear": None}


def _kb():
    return current_app.extensions["kb"]


def _service() -> Questions:
    return Questions(_kb())


def readable(question_id: int) -> Question:
    """The question, if this reader may read it: archived ones are for curators only."""
    question = _service().get(question_id)
    if question.status != "active" and not access.is_curator():
        raise NotFound(f"no question {question_id}")
    return question


def _log(action: str, question: Question) -> None:
    audit.record(_kb().store, access.actor(), action, f"question {question.id}", question.text)


def _form() -> dict:
    """A question's fields from the curators' form (checked by the service)."""
    return {"text": request.form.get("text", ""), "description": request.form.get("description", ""),
            "sites": request.form.getlist("site"), "types": request.form.getlist("type"),
            "date_from": request.form.get("from", ""), "date_to": request.form.get("to", "")}


def _choices() -> dict:
    """The sites and document types a curator can tick."""
    store = _kb().store
    every = Filters(visibility=VISIBILITIES)
    return {"site_choices": sorted(s for s, _ in store.counts("site", every)),
            "type_choices": sorted(t for t, _ in store.counts("doc_type", every)),
            "TEXT_LIMIT": TEXT_LIMIT, "DESCRIPTION_LIMIT": DESCRIPTION_LIMIT}


FIELD_IDS = {"text": "q-text", "description": "q-description", "sites": "q-sites", "types": "q-types",
             "date_from": "q-from", "date_to": "q-to"}  # the form's inputs, for the error summary's links


@bp.get("/questions")
def question_list(errors: dict | None = None, form: dict | None = None, status: int = 200):
    service = _service()
    curator = access.is_curator()
    shown = service.list(include_archived=curator)
    context = _choices() if curator else {}
    return render_template("questions.html", questions=[q for q in shown if q.status == "active"],
                           archived=[q for q in shown if q.status != "active"], errors=errors or {},
                           form=form or {}, **context), status


@bp.post("/questions")
@access.curator_required
def create():
    form = _form()
    try:
        question = _service().add(**form, by=access.actor())
    except InvalidField as exc:
        return question_list({FIELD_IDS[exc.field]: str(exc)}, form, 400)
    _log("question_add", question)
    flash("Question added.")
    return redirect(url_for("questions.question", question_id=question.id))


@bp.get("/questions/<int:question_id>")
def question(question_id: int, errors: dict | None = None, form: dict | None = None, status: int = 200):
    readable(question_id)
    per_site = _int(request.args, "per_site", 3, *PER_SITE_RANGE)
    evidence = _service().evidence(current_app.extensions["searcher"], question_id, access.visibility(), per_site)
    years = sorted({y for per in evidence.timeline.values() for y in per})
    context = _choices() if access.is_curator() else {}
    return render_template("question.html", evidence=evidence, q=evidence.question, years=years, PROGRAMME=PROGRAMME,
                           curator=access.is_curator(), errors=errors or {}, form=form or {}, **context), status


@bp.post("/questions/<int:question_id>/edit")
@access.curator_required
def edit(question_id: int):
    form = _form()
    try:
        changed = _service().edit(question_id, **form)
    except InvalidField as exc:
        return question(question_id, {FIELD_IDS[exc.field]: str(exc)}, form, 400)
    _log("question_edit", changed)
    flash("Question saved.")
    return redirect(url_for("questions.question", question_id=question_id))


@bp.post("/questions/<int:question_id>/<any(archive, restore):action>")
@access.curator_required
def set_status(question_id: int, action: str):
    service = _service()
    question = service.archive(question_id) if action == "archive" else service.restore(question_id)
    _log(f"question_{action}", question)
    flash("Question archived: only curators see it now." if action == "archive" else "Question restored.")
    return redirect(url_for("questions.question", question_id=question_id))


@bp.post("/questions/<int:question_id>/judge")
@access.curator_required
def judge(question_id: int):
    verdict = request.form.get("verdict", "")
    if verdict not in VERDICTS:
        raise BadRequest("a verdict is evidence, not_evidence or clear")
    chunk_id = _int(request.form, "chunk_id", -1, 0, 2**63 - 1)
    if chunk_id < 0:
        raise BadRequest("which passage? the form has no chunk_id")
    _service().judge(question_id, chunk_id, VERDICTS[verdict], by=access.actor())
    return redirect(url_for("questions.question", question_id=question_id, _anchor=f"passage-{chunk_id}"))


@bp.post("/questions/<int:question_id>/reviewed")
@access.curator_required
def reviewed(question_id: int):
    _service().mark_reviewed(question_id)
    flash("Marked reviewed: passages that arrive or change from now on are marked new.")
    return redirect(url_for("questions.question", question_id=question_id))


def _shown(question: Question) -> dict:
    data = question.to_dict()
    if not access.is_curator():
        data.pop("created_by")  # an account name is the curators' business
    return data


@bp.get("/api/questions")
def api_questions():
    if request.args:
        raise BadRequest(f"unknown parameter {sorted(request.args)[0][:40]!r}; this call takes none")
    return jsonify(questions=[_shown(q) for q in _service().list(include_archived=access.is_curator())])


@bp.get("/api/questions/<int:question_id>")
def api_question(question_id: int):
    unknown = set(request.args) - {"per_site"}
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0][:40]!r}; known: per_site")
    readable(question_id)
    per_site = _int(request.args, "per_site", 3, *PER_SITE_RANGE)
    evidence = _service().evidence(current_app.extensions["searcher"], question_id, access.visibility(), per_site)
    data = evidence.to_dict()
    data["question"] = _shown(evidence.question)
    access.redact_hits(data["pinned"])
    for site in data["sites"]:
        access.redact_hits(site["hits"])
    if access.is_curator():
        access.redact_hits(data["hidden"])
    else:
        data.pop("hidden")  # the curators' own bookkeeping
    return jsonify(data)
