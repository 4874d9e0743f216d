"""Evidence packs on the web: /questions/<id>/pack.docx, .md and .csv, the question's evidence as
its page shows it (`per_site` as there) to this reader."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request

from kb import packs
from kb.questions import Questions

from . import access
from .params import _int
from .questions import PER_SITE_RANGE, readable

bp = Blueprint("packs", __name__)
TYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8"}


@bp.get("/questions/<int:question_id>/pack.<any(docx, md, csv):fmt>")
def pack(question_id: int, fmt: str):
    readable(question_id)  # archived questions are for curators, as their pages
    questions = Questions(current_app.extensions["kb"])
    per_site = _int(request.args, "per_site", 3, *PER_SITE_RANGE)
    evidence = questions.evidence(current_app.extensions["searcher"], question_id, access.visibility(), per_site)
    base = access.site_base()
    made = datetime.now(timezone.utc).date().isoformat()
    if fmt == "docx":
        body = packs.to_docx(evidence, base, made)
    elif fmt == "md":
        body = packs.to_markdown(evidence, base, made)
    else:
        body = "\ufeff" + packs.to_csv(evidence, base)  # BOM: Excel reads UTF-8
    return Response(body, headers={"Content-Type": TYPES[fmt],
                                   "Content-Disposition": f'attachment; filename="evidence-pack-{question_id}.{fmt}"'})
