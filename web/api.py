"""The JSON API: search, documents, similar documents, stats and its OpenAPI description."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from kb.errors import BadRequest, NotFound
from kb.storage import SORTABLE

from . import access, analytics
from .openapi import spec
from .params import (LIMIT_RANGE, LISTING_OFFSET_RANGE, SIMILAR_K_RANGE, _int, filters_from, query_text,
                     search_request, shown)

bp = Blueprint("api", __name__, url_prefix="/api")


def _kb():
    return current_app.extensions["kb"]


def _document(doc) -> dict:
    data = doc.to_dict()
    data.pop("stored_path", None)
    data["source"] = access.shown_source(doc.source)
    if not access.is_curator():  # the curators' own bookkeeping
        data.pop("edited", None)
        data.pop("source_sha", None)
    if doc.dup_of is not None and not _kb().store.is_visible(doc.dup_of, access.visibility()):
        data["dup_of"] = None  # not even the id of a document this visitor may not see
    data["url"] = f"/doc/{doc.id}"
    data["file_url"] = f"/doc/{doc.id}/file" if doc.stored_path else None
    return data


def _visible(doc_id: int):
    visibility = access.visibility()
    doc = _kb().store.get(doc_id, visibility)
    if doc.status != "active" and "curators" not in visibility:
        raise NotFound(f"no document {doc_id}")
    return doc


@bp.get("/search")
def search():
    query_text(request.args)
    req = search_request(request.args, access.visibility())
    result = current_app.extensions["searcher"].search(req.q, k=req.k, filters=req.filters, mode=req.mode,
                                                       offset=req.offset, group=req.group)
    analytics.searched(result, req.offset)
    payload = result.to_dict()
    payload["facets"] = result.facets
    access.redact_hits(payload["hits"])
    access.redact_hits(payload["nearest"])
    return jsonify(payload)


@bp.get("/documents")
def documents():
    known = {"site", "type", "year", "tag", "limit", "offset", "sort", "order"}
    unknown = set(request.args) - known
    if unknown:
        raise BadRequest(f"unknown parameter {shown(sorted(unknown)[0])}")
    filters = filters_from(request.args, access.visibility())
    sort = request.args.get("sort", "id")
    if sort not in SORTABLE:
        raise BadRequest(f"sort must be one of {', '.join(SORTABLE)}")
    if request.args.get("order", "asc") not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    limit = _int(request.args, "limit", 100, *LIMIT_RANGE)
    offset = _int(request.args, "offset", 0, *LISTING_OFFSET_RANGE)
    kb = _kb()
    docs = kb.store.documents(filters, sort=sort, descending=request.args.get("order") == "desc",
                              limit=limit, offset=offset)
    return jsonify(total=kb.store.count_documents(filters), documents=[_document(d) for d in docs])


@bp.get("/documents/<int:doc_id>")
def document(doc_id: int):
    doc = _visible(doc_id)
    data = _document(doc)
    data["chunks"] = [row._asdict() for row in _kb().store.chunks_of(doc_id)]
    return jsonify(data)


@bp.get("/documents/<int:doc_id>/similar")
def similar(doc_id: int):
    _visible(doc_id)
    k = _int(request.args, "k", 5, *SIMILAR_K_RANGE)
    kb = _kb()
    found = current_app.extensions["searcher"].similar(doc_id, k, access.visibility())
    return jsonify(doc_id=doc_id, similar=[{**_document(kb.store.get(i)), "score": round(s, 6)} for i, s in found])


@bp.get("/stats")
def stats():
    data = _kb().stats(access.visibility())
    if "curators" not in access.visibility():
        data["index"].pop("vectors", None)  # the index also holds passages this visitor may not see
    return jsonify(data)


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec())
