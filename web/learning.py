"""Cross-site learning: one question across sites, themes, site pages, and exports with citations."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from kb import export, themes
from kb.across import across_sites
from kb.errors import BadRequest, NotFound
from kb.models import Filters

from . import access
from .params import query_text, search_request

bp = Blueprint("learning", __name__)


def _kb():
    return current_app.extensions["kb"]


def _searcher():
    return current_app.extensions["searcher"]


def _across(q: str):
    if not q:
        raise BadRequest("q is required")
    return across_sites(_searcher(), q, access.visibility(), per_site=3)


@bp.get("/across")
def across():
    q = (request.args.get("q") or "").strip()
    result = _across(q) if q else None
    return render_template("across.html", result=result, q=q)


@bp.get("/api/across")
def api_across():
    unknown = set(request.args) - {"q"}
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}; known: q")
    data = _across(query_text(request.args)).to_dict()
    for group in data["sites"]:
        access.redact_hits(group["hits"])
    return jsonify(data)


def _ensure_themes() -> bool:
    """Build themes the first time they are asked for; afterwards a rebuild is the curators' call."""
    kb = _kb()
    if not kb.store.themes.exist():
        with kb.writing():
            themes.build(kb)
    return themes.stale(kb)


@bp.get("/themes")
def theme_list():
    stale = _ensure_themes()
    visible = themes.visible_themes(_kb(), access.visibility())
    sites = sorted({s for t in visible for s in t.sites})
    peak = max([n for t in visible for n in t.sites.values()] or [1])
    return render_template("themes.html", themes=visible, sites=sites, peak=peak, stale=stale,
                           NO_SITE=themes.NO_SITE, NAME_LIMIT=themes.NAME_LIMIT)


@bp.get("/themes/<int:theme_id>")
def theme(theme_id: int):
    _ensure_themes()
    visibility = access.visibility()
    found = next((t for t in themes.visible_themes(_kb(), visibility) if t.id == theme_id), None)
    if found is None:
        raise NotFound(f"no theme {theme_id}")
    return render_template("theme.html", theme=found, passages=themes.theme_passages(_kb(), theme_id, visibility),
                           documents=themes.theme_documents(_kb(), theme_id, visibility))


@bp.get("/api/themes")
def api_themes():
    stale = _ensure_themes()
    return jsonify(stale=stale, themes=[t.__dict__ for t in themes.visible_themes(_kb(), access.visibility())])


@bp.get("/site/<name>")
def site(name: str):
    kb, visibility = _kb(), access.visibility()
    docs = kb.store.documents(Filters(site=[name], visibility=visibility), sort="published", descending=True)
    if not docs:
        raise NotFound(f"no site called {name!r}")
    _ensure_themes()
    site_themes = sorted((t for t in themes.visible_themes(kb, visibility) if name in t.sites),
                         key=lambda t: -t.sites[name])
    latest = [d for d in docs if d.doc_type == "learning-report"][:3] or docs[:3]
    partnership = next((d.partnership for d in docs if d.partnership), None)
    return render_template("site.html", name=name, docs=docs, themes=site_themes, latest=latest,
                           partnership=partnership)


@bp.get("/export")
def export_results():
    """`?view=results|across&format=csv|md` plus the search's own parameters."""
    view = request.args.get("view", "results")
    fmt = request.args.get("format", "csv")
    if view not in ("results", "across") or fmt not in ("csv", "md"):
        raise BadRequest("view must be results or across, format csv or md")
    args = request.args.copy()
    args.pop("view", None)
    args.pop("format", None)
    base = access.site_base()
    if view == "across":
        result = _across((args.get("q") or "").strip())
        rows, title = export.across_rows(result, base), f"Across sites: {result.query}"
    else:
        req = search_request(args, access.visibility(), default_group="document")  # as the page lists them
        if not req.q:
            raise BadRequest("q is required")
        result = _searcher().search(req.q, k=req.k, filters=req.filters, mode=req.mode, offset=req.offset,
                                    group=req.group)
        rows, title = export.hit_rows(result.hits, base, req.offset + 1), f"Search: {result.query}"
    stem = "kb-across" if view == "across" else "kb-results"
    if fmt == "csv":
        body, mime = "\ufeff" + export.to_csv(rows), "text/csv; charset=utf-8"  # BOM: Excel reads UTF-8
    else:
        body, mime = export.to_markdown(rows, title), "text/markdown; charset=utf-8"
    return Response(body, mimetype=mime.split(";")[0], headers={
        "Content-Type": mime, "Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


def export_links(view: str, args) -> dict[str, str]:
    params = {k: args.getlist(k) for k in args}
    return {fmt: url_for("learning.export_results", view=view, format=fmt, **params) for fmt in ("csv", "md")}
