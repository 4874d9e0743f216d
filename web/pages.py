"""Server-rendered pages: search (with facets and paging), document view, original file download."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from flask import Blueprint, current_app, render_template, request, send_file, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from kb.errors import NotFound
from kb.models import Filters
from kb.search import RELEVANCE_FLOOR

from . import access, analytics
from .params import search_request

bp = Blueprint("pages", __name__)
FACETS = (("site", "site", "Site"), ("doc_type", "type", "Document type"), ("year", "year", "Year"),
          ("tag", "tag", "Tag"))


def _kb():
    return current_app.extensions["kb"]


def _searcher():
    return current_app.extensions["searcher"]


def page_url(args: dict, **changes) -> str:
    """The search URL with some parameters changed (None removes one); paging resets to 1."""
    params = {k: list(v) for k, v in args.items()}
    params.pop("page", None)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value if isinstance(value, list) else [value]
    return url_for("pages.search", **{k: v for k, v in params.items() if v})


def toggle(args: dict, key: str, value: str) -> str:
    current = list(args.get(key, []))
    current = [v for v in current if v != value] if value in current else [*current, value]
    return page_url(args, **{key: current or None})


@bp.get("/")
def search():
    visibility = access.visibility()
    req = search_request(request.args, visibility, strict=False, default_group="document")
    args = req.args  # links carry the known parameters as searched (q capped, values once), not as typed
    context = dict(req=req, args=args, link_args=MultiDict(args), toggle=toggle, page_url=page_url,
                   facet_names=FACETS, Markup=Markup, relevance_floor=RELEVANCE_FLOOR)
    if not req.q:
        kb = _kb()
        stats = kb.stats(visibility)
        latest = kb.store.documents(Filters(visibility=visibility), sort="published", descending=True, limit=8)
        return render_template("overview.html", stats=stats, latest=latest, **context)
    result = _searcher().search(req.q, k=req.k, filters=req.filters, mode=req.mode, offset=req.offset,
                                group=req.group)
    analytics.searched(result, req.offset)
    for key, _, _ in FACETS:  # a chosen facet still offers its other values, counted without itself
        if getattr(req.filters, key):
            others = replace(req.filters, **{key: []})
            result.facets[key] = _searcher().search(req.q, k=req.k, filters=others, mode=req.mode).facets[key]
    pages = max(1, -(-result.total // req.k))
    filtered = any(request.args.getlist(k) for k in ("site", "type", "year", "tag", "from", "to"))
    return render_template("search.html", result=result, pages=pages, filtered=filtered, **context)


@bp.get("/doc/<int:doc_id>")
def document(doc_id: int):
    visibility = access.visibility()
    kb = _kb()
    doc = kb.store.get(doc_id, visibility)
    if doc.status != "active" and "curators" not in visibility:
        raise NotFound(f"no document {doc_id}")
    passages = kb.store.chunks_of(doc_id)
    sections = _sections(kb.store.body(doc_id), passages)
    similar = []
    for other_id, score in _searcher().similar(doc_id, 5, visibility):
        similar.append((kb.store.get(other_id), score))
    hl = request.args.get("hl", type=int)
    analytics.opened(request.args.get("q"), doc_id, hl, passages)  # from a search's result link
    return render_template("doc.html", doc=doc, sections=sections, similar=similar, hl=hl, autofocus=False)


def _sections(body: str, chunks) -> list[dict]:
    """The document as non-overlapping chunk sections, with a heading wherever the path changes."""
    out, previous_end, previous_path = [], 0, None
    for chunk in chunks:
        start = max(chunk.char_start, previous_end)
        text = body[start:chunk.char_end]
        path = chunk.heading.split(" > ") if chunk.heading else []
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        heading = None
        if chunk.heading != previous_path and path:
            heading = path[-1]
            if paragraphs and paragraphs[0].strip() == heading:
                paragraphs = paragraphs[1:]
        out.append({"ordinal": chunk.ordinal, "page": chunk.page, "heading": heading,
                    "level": min(len(path) + 1, 6), "paragraphs": paragraphs})
        previous_end, previous_path = max(previous_end, chunk.char_end), chunk.heading
    return out


@bp.get("/doc/<int:doc_id>/file")
def original(doc_id: int):
    kb = _kb()
    doc = kb.store.get(doc_id, access.visibility())
    if doc.status != "active" and "curators" not in access.visibility():
        raise NotFound(f"no document {doc_id}")
    if not doc.stored_path:
        raise NotFound("this document has no original file")
    try:
        path = kb.files.local_path(doc.stored_path) or io.BytesIO(kb.files.read(doc.stored_path))
    except NotFound:
        raise NotFound("the original file is missing") from None
    name = Path(doc.original_name or f"document-{doc.id}").name
    inline = (doc.mime or "") in ("application/pdf", "text/plain")
    # the content's hash as the ETag, the same on every node; web/caching.py says who may keep it
    return send_file(path, mimetype=doc.mime or "application/octet-stream", as_attachment=not inline,
                     download_name=name, etag=doc.source_sha or True)


@bp.get("/accessibility")
def accessibility():
    """The accessibility statement, in the form of GOV.UK's model statement."""
    return render_template("accessibility.html")
