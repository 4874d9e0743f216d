"""The curator workspace: upload, jobs, documents (edit, retire, restore, delete), re-embed, audit."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from ingest.detect import SUPPORTED, SUPPORTED_NAMES
from ingest.dates import normalize_date
from ingest.meta import meta_from_mapping
from ingest.upload import safe_name, stage
from kb import audit
from kb.errors import BadRequest, LoadError
from kb.models import VISIBILITIES, Filters
from kb.storage import SORTABLE

from . import access
from .params import local_path

bp = Blueprint("admin", __name__, url_prefix="/admin")
MAX_UPLOAD_FILES = 20  # files in one upload form, each up to the size limit
DOC_TYPES = ("announcement", "learning-report", "guidance", "profile")
META_FIELDS = ("title", "doc_type", "site", "partnership", "published", "tags", "visibility")


@bp.before_request
@access.curator_required
def curators_only():
    return None


def _kb():
    return current_app.extensions["kb"]


def _jobs():
    return current_app.extensions["jobs"]


def _log(action: str, target="", detail: str = "") -> None:
    audit.record(_kb().store, access.actor(), action, target, detail)


FIELD_LIMITS = {"title": 300, "site": 100, "partnership": 200, "tags": 1000}  # as the form's maxlength says


def _form_meta(current=None) -> dict:
    """The metadata fields of a curator's form, checked here (an HTML maxlength binds nobody); a
    value the document `current` already has (an ingested file's long title) passes unchanged."""
    meta = {k: (request.form.get(k) or "").strip() for k in META_FIELDS}
    for field, limit in FIELD_LIMITS.items():
        now = getattr(current, field, None) if current is not None else None
        if len(meta[field]) > limit and meta[field] != ("; ".join(now) if field == "tags" and now else now):
            raise BadRequest(f"the {field} is {len(meta[field]):,} characters long; at most {limit} can be saved")
    meta["tags"] = [t.strip() for t in meta["tags"].replace(",", ";").split(";") if t.strip()]
    if meta["visibility"] and meta["visibility"] not in VISIBILITIES:
        raise BadRequest("visibility must be public, partners or curators")
    meta = {k: v for k, v in meta.items() if v}
    try:
        meta_from_mapping(meta, "the form")  # a bad date is refused now, not when the job runs
    except LoadError as exc:
        raise BadRequest(str(exc)) from None
    return meta


@bp.get("/")
def home():
    return redirect(url_for("admin.documents"))


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    if request.method == "GET":
        return render_template("admin/upload.html", doc_types=DOC_TYPES, visibilities=VISIBILITIES,
                               accept=",".join(sorted(SUPPORTED)), supported=SUPPORTED_NAMES)
    files = [f for f in request.files.getlist("files") if f and f.filename]
    if not files:
        raise BadRequest("choose at least one file to upload")
    if len(files) > MAX_UPLOAD_FILES:
        raise BadRequest(f"upload at most {MAX_UPLOAD_FILES} files at a time")
    meta = _form_meta()
    limit = _kb().settings.max_file_mb * 1024 * 1024
    queued = too_large = 0
    for storage in files:
        name = safe_name(storage.filename)
        data = storage.read(limit + 1)
        try:
            if len(data) > limit:
                too_large += 1
                raise LoadError(f"larger than the limit of {_kb().settings.max_file_mb} MB")
            path = stage(_kb(), data, name)
        except LoadError as exc:
            reason = str(exc) if len(data) > limit else f"{exc} (kb reads {SUPPORTED_NAMES})"
            flash(f"{name} was not accepted: {reason}", "error")
            _log("upload_refused", name, str(exc))
            continue
        job = _jobs().create("upload", access.actor(), name, path, meta)
        _log("upload", f"job {job.id}", name)
        queued += 1
    if queued:
        current_app.extensions["worker"].notify()
        flash(f"{queued} file{'s' if queued != 1 else ''} queued for ingestion.")
    elif too_large:
        raise RequestEntityTooLarge()  # nothing came of this upload, and size is why
    return redirect(url_for("admin.jobs"))


@bp.get("/jobs")
def jobs():
    items = _jobs().list()
    active = any(j.status in ("queued", "running") for j in items)
    return render_template("admin/jobs.html", jobs=items, refresh=active)


@bp.post("/jobs/<int:job_id>/decide")
def decide(job_id: int):
    job = _jobs().get(job_id)
    choice = request.form.get("choice")
    if job.status != "needs_decision":
        raise BadRequest("this job is not waiting for a decision")
    if choice == "cancel":
        if job.upload_path:
            _kb().files.delete(job.upload_path)
        _jobs().update(job_id, status="cancelled", progress=100, message="cancelled by a curator")
    elif choice in ("keep", "replace"):
        _jobs().update(job_id, status="queued", meta={**job.meta, "_decision": choice},
                       message="keep both" if choice == "keep" else f"replace document {job.duplicate_of}")
        current_app.extensions["worker"].notify()
    else:
        raise BadRequest("choose keep, replace or cancel")
    _log(f"upload_{choice}", f"job {job_id}", job.original_name)
    return redirect(url_for("admin.jobs"))


@bp.get("/documents")
def documents():
    sort = request.args.get("sort", "added_at")
    if sort not in SORTABLE:
        raise BadRequest(f"sort must be one of {', '.join(SORTABLE)}")
    order = "asc" if request.args.get("order") == "asc" else "desc"
    filters = Filters(site=[v for v in request.args.getlist("site") if v],
                      doc_type=[v for v in request.args.getlist("type") if v])
    status = request.args.get("status", "")
    docs = _kb().store.documents(filters, include_retired=True, sort=sort, descending=order == "desc", limit=5000)
    if status in ("active", "retired"):
        docs = [d for d in docs if d.status == status]
    needle = (request.args.get("q") or "").strip().lower()
    if needle:
        docs = [d for d in docs if needle in d.title.lower() or needle in (d.original_name or "").lower()]
    stats = _kb().stats()
    return render_template("admin/documents.html", docs=docs, sort=sort, order=order, stats=stats,
                           args=request.args, status=status, doc_types=DOC_TYPES)


@bp.route("/documents/<int:doc_id>", methods=["GET", "POST"])
def edit(doc_id: int):
    kb = _kb()
    doc = kb.store.get(doc_id)
    if request.method == "POST":
        new = _form_meta(doc)
        changes = {}
        for key in META_FIELDS:
            value = new.get(key, [] if key == "tags" else None)
            if key in ("title", "visibility") and not value:
                continue
            if value != getattr(doc, key):
                changes[key] = value
        if changes.get("published"):
            changes["published"] = normalize_date(changes["published"])
            if changes["published"] is None:
                raise BadRequest("the date must look like YYYY-MM-DD")
            if changes["published"] == doc.published:
                del changes["published"]
        if changes:
            kb.update(doc_id, changes)
            _log("edit", f"document {doc_id}", ", ".join(f"{k}={v}" for k, v in changes.items()))
            flash("Saved. Search shows the new details now.")
        return redirect(url_for("admin.edit", doc_id=doc_id))
    duplicates = [kb.store.get(i) for i in kb.store.duplicates_of(doc_id)]
    return render_template("admin/edit.html", doc=doc, doc_types=DOC_TYPES, visibilities=VISIBILITIES,
                           duplicates=duplicates)


@bp.post("/documents/<int:doc_id>/<any(retire, restore):action>")
def set_status(doc_id: int, action: str):
    _kb().set_status(doc_id, "retired" if action == "retire" else "active")
    _log(action, f"document {doc_id}")
    flash(f"Document {doc_id} {'retired: hidden from search, kept here' if action == 'retire' else 'restored'}.")
    return redirect(local_path(request.form.get("back"), url_for("admin.documents")))


@bp.post("/documents/<int:doc_id>/delete")
def delete(doc_id: int):
    doc = _kb().remove(doc_id)
    _log("delete", f"document {doc_id}", doc.title)
    flash(f"Deleted “{doc.title}”: file, passages and vectors are gone.")
    return redirect(url_for("admin.documents"))


@bp.post("/reindex")
def reindex():
    job = _jobs().create("reembed", access.actor(), "all documents")
    current_app.extensions["worker"].notify()
    _log("reembed", f"job {job.id}")
    flash("Re-embedding queued; progress shows below.")
    return redirect(url_for("admin.jobs"))


@bp.post("/themes")
def rebuild_themes():
    from kb import themes

    with _kb().writing():
        built = themes.build(_kb())
    _log("themes", "all", f"{len(built)} themes")
    flash(f"Themes rebuilt: {len(built)}.")
    return redirect(url_for("learning.theme_list"))


@bp.post("/themes/name")
def name_theme():
    """A curator's name for a theme, shown to every reader; an empty one brings back the label."""
    from kb import themes

    theme_id = request.form.get("theme", "")
    if not theme_id.isdigit():
        raise BadRequest("choose a theme to name")
    theme_id = int(theme_id)
    name = themes.rename(_kb(), theme_id, request.form.get("name"))
    _log("theme_name", f"theme {theme_id}", name or "(label from its passages)")
    flash(f"Theme {theme_id} is now called “{name}”." if name else
          f"Theme {theme_id} is labelled from its passages again.")
    return redirect(url_for("learning.theme_list"))


@bp.get("/audit")
def audit_log():
    action = request.args.get("action") or None
    return render_template("admin/audit.html", entries=audit.entries(_kb().store, 500, action=action),
                           action=action)
