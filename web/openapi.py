"""The OpenAPI description of /api (a test checks it lists exactly the app's routes, and
tests/test_openapi.py fuzzes the API against it). Every bound the API enforces is declared, taken
from where the code keeps it, so the two cannot drift."""

from __future__ import annotations

from kb import __version__
from kb.search import GROUPS, MAX_K, MODES
from kb.storage import SORTABLE

from .params import (DATE, LIMIT_RANGE, LISTING_OFFSET_RANGE, MAX_Q_CHARS, MAX_VALUE_CHARS, MAX_VALUES,
                     OFFSET_RANGE, PAGE_RANGE, SIMILAR_K_RANGE)
from .questions import PER_SITE_RANGE as QUESTION_PER_SITE


def _param(name: str, schema: dict, desc: str = "", where: str = "query", required: bool = False) -> dict:
    out = {"name": name, "in": where, "schema": schema, "description": desc, "required": required}
    if schema.get("type") == "array":
        out.update(style="form", explode=True)
    return out


def _integer(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def _many(items: dict) -> dict:
    return {"type": "array", "items": items, "maxItems": MAX_VALUES}


# a question with nothing to search in it (spaces, control characters) is a 422
QUERY = {"type": "string", "minLength": 1, "maxLength": MAX_Q_CHARS}
DAY = {"type": "string", "pattern": f"^({DATE})?$"}  # empty: no bound
VALUE = {"type": "string", "maxLength": MAX_VALUE_CHARS}
MODE = {"type": "string", "enum": ["", *MODES]}  # empty: the default, as for every optional parameter
GROUP = {"type": "string", "enum": ["", *GROUPS]}
SORT = {"type": "string", "enum": list(SORTABLE)}
ORDER = {"type": "string", "enum": ["asc", "desc"]}
ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}}, "required": ["code", "message"]}}}
HIT = {"type": "object", "properties": {
    "doc_id": {"type": "integer"}, "chunk_id": {"type": "integer"}, "ordinal": {"type": "integer"},
    "title": {"type": "string"}, "source": {"type": "string"}, "site": {"type": "string", "nullable": True},
    "doc_type": {"type": "string", "nullable": True}, "published": {"type": "string", "nullable": True},
    "page": {"type": "integer", "nullable": True}, "heading": {"type": "string"}, "text": {"type": "string"},
    "snippet": {"type": "string", "description": "HTML-escaped text; query terms wrapped in <mark>, the "
                                                "sentence that matches best in <strong>"},
    "score": {"type": "number"}, "also_in": {"type": "array", "items": {"type": "object"}},
    "more": {"type": "array", "description": "group=document: further passages of the document (chunk_id, "
                                             "ordinal, page, heading, snippet)", "items": {"type": "object"}}}}
DOCUMENT = {"type": "object", "properties": {
    "id": {"type": "integer"}, "title": {"type": "string"}, "source": {"type": "string"},
    "doc_type": {"type": "string", "nullable": True}, "site": {"type": "string", "nullable": True},
    "partnership": {"type": "string", "nullable": True}, "published": {"type": "string", "nullable": True},
    "tags": {"type": "array", "items": {"type": "string"}}, "visibility": {"type": "string"},
    "status": {"type": "string"}, "url": {"type": "string"}, "file_url": {"type": "string", "nullable": True},
    "warnings": {"type": "array", "items": {"type": "string"},
                 "description": "what reading the file noted, such as text read from a scan by OCR"}}}
DOC_ID = _param("doc_id", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "document id", "path", True)
NULLABLE_TEXT = {"type": "string", "nullable": True}
QUESTION = {"type": "object", "properties": {  # created_by for curators only
    "id": {"type": "integer"}, "text": {"type": "string"}, "description": {"type": "string"},
    "sites": {"type": "array", "items": {"type": "string"}}, "types": {"type": "array", "items": {"type": "string"}},
    "date_from": NULLABLE_TEXT, "date_to": NULLABLE_TEXT, "status": {"type": "string", "enum": ["active", "archived"]},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "reviewed_at": NULLABLE_TEXT},
    "required": ["id", "text", "sites", "types", "status"]}
QUESTION_ID = _param("question_id", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "question id", "path",
                     True)
HITS = {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}
QUESTION_EVIDENCE = {"type": "object", "properties": {
    "question": {"$ref": "#/components/schemas/Question"}, "pinned": HITS,
    "sites": {"type": "array", "items": {"type": "object", "properties": {
        "site": {"type": "string"}, "partnership": NULLABLE_TEXT, "found": {"type": "boolean"},
        "pinned": {"type": "integer"}, "hits": HITS}}},
    "timeline": {"type": "object", "description": "site -> publication year (or 'undated') -> passages of evidence",
                 "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}},
    "new": {"type": "array", "items": {"type": "integer"}, "description": "chunk ids new since the last review"},
    "hidden": {**HITS, "description": "curators only: passages judged not evidence"}},
    "required": ["question", "pinned", "sites", "timeline", "new"]}


def _ok(schema: dict, desc: str = "OK") -> dict:
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): _ok({"$ref": "#/components/schemas/Error"}, "error") for c in codes}


def spec() -> dict:
    filters = [_param("site", _many(VALUE), "site, any of these (each value counts once)"),
               _param("type", _many(VALUE), "document type, any of these"),
               _param("year", _many(_integer(1000, 9999)), "year published, any of these"),
               _param("tag", _many(VALUE), "tag, any of these")]
    return {
        "openapi": "3.0.3",
        "info": {"title": "kb API", "version": __version__,
                 "description": "Hybrid semantic search over the Healthy Communities Together collection. "
                                f"A query string holds at most 100 values, {MAX_VALUES} of one parameter."},
        "components": {"schemas": {"Error": ERROR, "Hit": HIT, "Document": DOCUMENT, "Question": QUESTION}},
        "paths": {
            "/api/search": {"get": {
                "summary": "Search passages (same shape as `kb search --json`)",
                "parameters": [_param("q", QUERY, "the question or keywords (the first 1,000 characters are searched)",
                                      required=True),
                               _param("k", _integer(1, MAX_K), f"hits per page, 1-{MAX_K} (default 10)"),
                               _param("mode", MODE, "hybrid (default), dense or keyword"),
                               _param("group", GROUP, "passage (default): every matching passage; document: "
                                                      "each document once, with a few more of its passages"),
                               _param("page", _integer(*PAGE_RANGE), "page of results (default 1)"),
                               _param("offset", _integer(*OFFSET_RANGE), "hits to skip; instead of page"),
                               _param("from", DAY, "published on or after (YYYY, YYYY-MM or YYYY-MM-DD)"),
                               _param("to", DAY, "published on or before"), *filters],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "query": {"type": "string"}, "mode": {"type": "string"}, "took_ms": {"type": "number"},
                    "total": {"type": "integer", "description": "matching results (passages, or documents "
                                                               "with group=document) before paging"},
                    "best_similarity": {"type": "number", "nullable": True},
                    "group": {"type": "string", "enum": ["passage", "document"]},
                    "matching": {"type": "object", "description": "what matches: a keyword match, or close enough "
                                 "in meaning; complete is false when there are at least these", "properties": {
                        "passages": {"type": "integer"}, "documents": {"type": "integer"},
                        "complete": {"type": "boolean"}}},
                    "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                    "nearest": {"type": "array", "description": "when nothing matches: the closest passages, "
                                "uncounted", "items": {"$ref": "#/components/schemas/Hit"}},
                    "facets": {"type": "object"}}}), **_errors(400, 401, 422, 503)}}},
            "/api/documents": {"get": {
                "summary": "List documents visible to the caller",
                "parameters": [*filters, _param("limit", _integer(*LIMIT_RANGE), "documents at most (default 100)"),
                               _param("offset", _integer(*LISTING_OFFSET_RANGE), "documents to skip"),
                               _param("sort", SORT, "field to sort by (default id)"),
                               _param("order", ORDER, "asc (default) or desc")],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "documents": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}}}}),
                    **_errors(400, 401, 503)}}},
            "/api/documents/{doc_id}": {"get": {
                "summary": "One document with its chunks", "parameters": [DOC_ID],
                "responses": {"200": _ok({"$ref": "#/components/schemas/Document"}), **_errors(400, 401, 404, 503)}}},
            "/api/documents/{doc_id}/similar": {"get": {
                "summary": "Nearest other documents by meaning, near-duplicates excluded",
                "parameters": [DOC_ID, _param("k", _integer(*SIMILAR_K_RANGE), "documents at most (default 5)")],
                "responses": {"200": _ok({"type": "object"}), **_errors(400, 401, 404, 503)}}},
            "/api/across": {"get": {
                "summary": "One question across sites: each site's best passages, and the sites with none",
                "parameters": [_param("q", QUERY, "the question", required=True)],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "query": {"type": "string"}, "sites": {"type": "array", "items": {"type": "object", "properties": {
                        "site": {"type": "string"}, "partnership": {"type": "string", "nullable": True},
                        "found": {"type": "boolean"},
                        "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}}}}}),
                    **_errors(400, 401, 422, 503)}}},
            "/api/themes": {"get": {
                "summary": "Themes across the collection, with passages per site (visible documents only)",
                "responses": {"200": _ok({"type": "object"}), **_errors(400, 401, 503)}}},
            "/api/stats": {"get": {"summary": "Counts by type, site and year; index and model",
                                   "responses": {"200": _ok({"type": "object"}), **_errors(400, 401, 503)}}},
            "/api/questions": {"get": {
                "summary": "Learning questions (curators also get archived ones)",
                "responses": {"200": _ok({"type": "object", "properties": {
                    "questions": {"type": "array", "items": {"$ref": "#/components/schemas/Question"}}}}),
                    **_errors(400, 401, 503)}}},
            "/api/questions/{question_id}": {"get": {
                "summary": "A learning question's evidence as the caller may see it: judged evidence, each site's "
                           "best passages, the sites with none, passages per site and year, which are new",
                "parameters": [QUESTION_ID, _param("per_site", _integer(*QUESTION_PER_SITE),
                                                   "passages per site (default 3)")],
                "responses": {"200": _ok(QUESTION_EVIDENCE), **_errors(400, 401, 404, 503)}}},
            "/api/openapi.json": {"get": {"summary": "This description",
                                          "responses": {"200": _ok({"type": "object"})}}},
        },
    }
