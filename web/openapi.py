"""The OpenAPI description of /api (a test checks it lists exactly the app's routes)."""

from __future__ import annotations

from kb import __version__


def _param(name: str, where: str = "query", kind: str = "string", desc: str = "", many: bool = False,
           required: bool = False) -> dict:
    schema = {"type": "array", "items": {"type": kind}} if many else {"type": kind}
    out = {"name": name, "in": where, "schema": schema, "description": desc, "required": required}
    if many:
        out.update(style="form", explode=True)
    return out


ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}}, "required": ["code", "message"]}}}
HIT = {"type": "object", "properties": {
    "doc_id": {"type": "integer"}, "chunk_id": {"type": "integer"}, "ordinal": {"type": "integer"},
    "title": {"type": "string"}, "source": {"type": "string"}, "site": {"type": "string", "nullable": True},
    "doc_type": {"type": "string", "nullable": True}, "published": {"type": "string", "nullable": True},
    "page": {"type": "integer", "nullable": True}, "heading": {"type": "string"}, "text": {"type": "string"},
    "snippet": {"type": "string", "description": "HTML-escaped text; query terms wrapped in <mark>"},
    "score": {"type": "number"}, "also_in": {"type": "array", "items": {"type": "object"}}}}
DOCUMENT = {"type": "object", "properties": {
    "id": {"type": "integer"}, "title": {"type": "string"}, "source": {"type": "string"},
    "doc_type": {"type": "string", "nullable": True}, "site": {"type": "string", "nullable": True},
    "partnership": {"type": "string", "nullable": True}, "published": {"type": "string", "nullable": True},
    "tags": {"type": "array", "items": {"type": "string"}}, "visibility": {"type": "string"},
    "status": {"type": "string"}, "url": {"type": "string"}, "file_url": {"type": "string", "nullable": True}}}
DOC_ID = _param("doc_id", "path", "integer", "document id", required=True)


def _ok(schema: dict, desc: str = "OK") -> dict:
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): _ok({"$ref": "#/components/schemas/Error"}, "error") for c in codes}


def spec() -> dict:
    filters = [_param("site", many=True), _param("type", desc="document type", many=True),
               _param("year", kind="integer", many=True), _param("tag", many=True)]
    return {
        "openapi": "3.0.3",
        "info": {"title": "kb API", "version": __version__,
                 "description": "Hybrid semantic search over the Healthy Communities Together collection."},
        "components": {"schemas": {"Error": ERROR, "Hit": HIT, "Document": DOCUMENT}},
        "paths": {
            "/api/search": {"get": {
                "summary": "Search passages (same shape as `kb search --json`)",
                "parameters": [_param("q", required=True, desc="the question or keywords"),
                               _param("k", kind="integer", desc="hits per page, 1-100 (default 10)"),
                               _param("mode", desc="hybrid (default), dense or keyword"),
                               _param("page", kind="integer"), _param("offset", kind="integer"),
                               _param("from", desc="published on or after (YYYY-MM-DD)"),
                               _param("to", desc="published on or before"), *filters],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "query": {"type": "string"}, "mode": {"type": "string"}, "took_ms": {"type": "number"},
                    "total": {"type": "integer"}, "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                    "facets": {"type": "object"}}}), **_errors(400)}}},
            "/api/documents": {"get": {
                "summary": "List documents visible to the caller",
                "parameters": [*filters, _param("limit", kind="integer"), _param("offset", kind="integer"),
                               _param("sort"), _param("order", desc="asc or desc")],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "documents": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}}}}),
                    **_errors(400)}}},
            "/api/documents/{doc_id}": {"get": {
                "summary": "One document with its chunks", "parameters": [DOC_ID],
                "responses": {"200": _ok({"$ref": "#/components/schemas/Document"}), **_errors(404)}}},
            "/api/documents/{doc_id}/similar": {"get": {
                "summary": "Nearest other documents by meaning, near-duplicates excluded",
                "parameters": [DOC_ID, _param("k", kind="integer")],
                "responses": {"200": _ok({"type": "object"}), **_errors(400, 404)}}},
            "/api/across": {"get": {
                "summary": "One question across sites: each site's best passages, and the sites with none",
                "parameters": [_param("q", required=True)],
                "responses": {"200": _ok({"type": "object", "properties": {
                    "query": {"type": "string"}, "sites": {"type": "array", "items": {"type": "object", "properties": {
                        "site": {"type": "string"}, "partnership": {"type": "string", "nullable": True},
                        "found": {"type": "boolean"},
                        "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}}}}}),
                    **_errors(400)}}},
            "/api/themes": {"get": {
                "summary": "Themes across the collection, with passages per site (visible documents only)",
                "responses": {"200": _ok({"type": "object"})}}},
            "/api/stats": {"get": {"summary": "Counts by type, site and year; index and model",
                                   "responses": {"200": _ok({"type": "object"})}}},
            "/api/openapi.json": {"get": {"summary": "This description",
                                          "responses": {"200": _ok({"type": "object"})}}},
        },
    }
