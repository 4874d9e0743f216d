"""Curator workspace: roles, CSRF, uploads, jobs, duplicates, edits, retire/delete, audit, visibility."""

from __future__ import annotations

import io
import re

import pytest

from cli import main
from conftest import image_file, make_pdf, scan_image
from ingest.detect import SUPPORTED_NAMES
from ingest.pipeline import ingest_paths
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.errors import NotFound
from kb.models import DocMeta
from kb.settings import Settings
from support.db import run as sql_run

PASSWORD = "correct horse battery"
XSS = '<script>alert("x")</script>'
ADMIN_PAGES = ["/admin/", "/admin/documents", "/admin/upload", "/admin/jobs", "/admin/audit", "/admin/documents/1"]


@pytest.fixture
def site(tmp_path, model, database_url):
    """Two documents, a curator and a partner, on each backend in turn."""
    from web import create_app

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "public.md").write_text("# Allotments in Croydon\n\nResidents grow vegetables together on allotments.\n")
    (folder / "secret.md").write_text("# Peer support in Leeds\n\nPeer supporters with lived experience of mental "
                                      "health problems ran listening circles.\n")
    settings = Settings(data_dir=tmp_path / "data", max_file_mb=1, database_url=database_url,
                        secret_key="a key every node shares" if database_url else "")
    kb = KnowledgeBase.open(settings, model)
    ingest_paths(kb, [folder / "public.md"], DocMeta(site="Croydon"))
    ingest_paths(kb, [folder / "secret.md"], DocMeta(site="Leeds", visibility="partners"))
    accounts = Accounts(kb.store)
    accounts.add("cur", "curator", PASSWORD)
    accounts.add("par", "partner", PASSWORD)
    app = create_app(settings, {"TESTING": True}, kb=kb)
    yield app
    app.extensions["worker"].stop()


def token(client, url="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def sign_in(app, name):
    client = app.test_client()
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 302
    return client


def test_upload_form_refuses_a_bad_date_at_once(site):
    client = sign_in(site, "cur")
    response = upload(client, [(io.BytesIO(b"Some words."), "a.txt")], published="2021-02-30")
    assert response.status_code == 400 and "is not a date" in response.get_data(as_text=True)
    assert not site.extensions["jobs"].list()


def upload(client, files, **meta):
    data = {"csrf_token": token(client, "/admin/upload"), "files": files, **meta}
    return client.post("/admin/upload", data=data, content_type="multipart/form-data")


def finish(app):
    assert app.extensions["worker"].wait_idle(60)
    return app.extensions["jobs"].list()


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_role_route_matrix(site, path):
    anonymous = site.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert sign_in(site, "par").get(path).status_code == 403
    assert sign_in(site, "cur").get(path, follow_redirects=True).status_code == 200


@pytest.mark.parametrize("path", ["/admin/upload", "/admin/documents/1/retire", "/admin/documents/1/delete",
                                  "/admin/reindex", "/admin/jobs/1/decide", "/logout", "/login"])
def test_posts_without_a_csrf_token_are_refused(site, path):
    client = sign_in(site, "cur")
    response = client.post(path, data={"name": "cur", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert site.extensions["kb"].store.count() == 2


def test_visibility_by_role_on_every_path(site):
    kb = site.extensions["kb"]
    secret = next(d for d in kb.store.documents() if d.visibility == "partners")
    query = "/api/search?q=peer+support+listening+circles&k=10"
    anonymous, partner = site.test_client(), sign_in(site, "par")
    assert all(h["doc_id"] != secret.id for h in anonymous.get(query).get_json()["hits"])
    assert any(h["doc_id"] == secret.id for h in partner.get(query).get_json()["hits"])
    assert "Leeds" not in anonymous.get(query).get_json()["facets"]["site"]
    assert anonymous.get("/api/stats").get_json()["documents"] == 1
    assert partner.get("/api/stats").get_json()["documents"] == 2
    for url in (f"/doc/{secret.id}", f"/doc/{secret.id}/file", f"/api/documents/{secret.id}"):
        assert anonymous.get(url).status_code == 404 and partner.get(url).status_code == 200
    assert "Peer support" not in anonymous.get("/?q=peer+support").get_data(as_text=True)
    assert "Peer support" in partner.get("/?q=peer+support").get_data(as_text=True)


def test_upload_then_search_finds_it_with_metadata(site):
    client = sign_in(site, "cur")
    pdf = make_pdf([[("h1", "Befriending"), ("p", "Plymouth volunteers befriended isolated older residents.")]])
    response = upload(client, [(io.BytesIO(pdf), "befriending.pdf")], title="Befriending report",
                      site="Plymouth", doc_type="learning-report", tags="volunteers; loneliness", visibility="public")
    assert response.status_code == 302
    job = finish(site)[0]
    assert job.status == "done", job.message
    hit = site.test_client().get("/api/search?q=lonely+older+people+visited+by+volunteers&k=1").get_json()["hits"][0]
    assert (hit["title"], hit["site"], hit["doc_type"], hit["doc_id"]) == (
        "Befriending report", "Plymouth", "learning-report", job.doc_id)
    jobs_page = client.get("/admin/jobs").get_data(as_text=True)
    assert f'href="/doc/{job.doc_id}"' in jobs_page


def test_an_uploaded_emails_attachments_are_documents_of_their_own(site):
    from support.formats import make_eml

    client = sign_in(site, "cur")
    pdf = make_pdf([[("h1", "Befriending"), ("p", "Plymouth volunteers befriended isolated older residents.")]],
                   title="Befriending report")
    message = make_eml("Plymouth update", "The befriending report is attached.", attachments=[
        ("befriending.pdf", pdf, "application/pdf"), ("locked.pdf", b"%PDF-1.7 broken", "application/pdf")])
    upload(client, [(io.BytesIO(message), "update.eml")], site="Plymouth", visibility="partners")
    job = finish(site)[0]
    assert job.status == "done" and job.message.startswith("added: 1 passages; update.eml#befriending.pdf: added, 1 passages; "
                                                           "update.eml#locked.pdf: corrupt PDF"), job.message
    kb = site.extensions["kb"]
    message_doc = kb.store.get(job.doc_id)
    attached = [d for d in kb.store.documents() if d.source == f"{message_doc.source}#befriending.pdf"]
    assert [(d.title, d.site, d.visibility, d.original_name) for d in attached] == [
        ("Befriending report", "Plymouth", "partners", "befriending.pdf")]
    assert kb.files.read(attached[0].stored_path) == pdf


@pytest.mark.parametrize("name", ["../../etc/passwd.md", "/etc/passwd.txt", "C:\\Windows\\system.ini.txt",
                                  "evil\x00.md", f"{XSS}.md", "../../etc/passwd"])
def test_hostile_file_names_are_never_paths(site, name):
    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(b"# Notes\n\nHarmless community notes about gardens."), name)])
    kb = site.extensions["kb"]
    assert not (kb.data_dir.parent / "etc").exists() and not (kb.data_dir / "etc").exists()
    if not finish(site):  # no supported extension left: refused, with the reason shown
        html = client.get("/admin/jobs").get_data(as_text=True)
        assert "was not accepted: unsupported file type" in html and "<script>alert" not in html
        return
    job = finish(site)[0]
    assert "/" not in job.original_name and "\\" not in job.original_name and "\x00" not in job.original_name
    assert job.status == "done"
    doc = kb.store.get(job.doc_id)
    assert doc.stored_path.startswith("files/") and re.fullmatch(r"files/[0-9a-f]{2}/[0-9a-f]{64}\.?\w*", doc.stored_path)
    assert not (kb.data_dir.parent / "etc").exists()
    for page in ("/admin/jobs", "/admin/documents", f"/admin/documents/{doc.id}"):
        html = client.get(page).get_data(as_text=True)
        assert "<script>alert" not in html


def test_a_failed_job_is_unmistakable(site):
    """Failed jobs showed the same full progress bar as finished ones (issue 18)."""
    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(b"PK\x03\x04" + b"not really a zip" * 20), "broken.docx"),
                    (io.BytesIO(b"# Garden notes\n\nGardens help people meet."), "fine.md")])
    assert sorted(j.status for j in finish(site)) == ["done", "failed"]
    page = client.get("/admin/jobs").get_data(as_text=True)
    failed = page[page.index('class="job failed"'):]
    failed = failed[:failed.index("</tr>")]
    assert "Failed</strong>" in failed and "<progress" not in failed and "Why: " in failed
    done = page[page.index('class="job done"'):]
    assert "Done</span>" in done[:done.index("</tr>")]


@pytest.mark.parametrize("part, content, name, named", [
    ("Index/Document.iwa", "x", "slides.key", "unsupported file type: Apple Keynote (.key)"),
    ("mimetype", "application/vnd.oasis.opendocument.graphics", "map.odg",
     "unsupported file: an OpenDocument drawing (.odg)"),
])
def test_an_office_file_kb_cannot_read_is_refused_at_once_naming_what_it_reads(site, part, content, name, named):
    """An .xlsx or .pptx upload was queued, then failed as "a zip archive, but not a Word document"
    (both are read now: tests/test_formats.py); a zip kb does not read is refused by its name."""
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr(part, content)
    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(packed.getvalue()), name)])
    assert site.extensions["jobs"].list() == []  # no job: refused in the form's own answer
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert f"was not accepted: {named} (kb reads {SUPPORTED_NAMES})" in page


def test_an_image_upload_is_refused_at_once_when_ocr_is_off(site):
    object.__setattr__(site.extensions["kb"].settings, "ocr", False)
    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(image_file(scan_image("A handout", dpi=50), "png")), "handout.png")])
    assert site.extensions["jobs"].list() == []
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "handout.png was not accepted: an image: its text is read only by OCR, which is off (KB_OCR=0)" in page


def test_unsupported_and_oversized_uploads(site):
    client = sign_in(site, "cur")
    response = upload(client, [(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50), "photo.pdf")])
    assert response.status_code == 302
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "photo.pdf was not accepted" in page and "not a PDF" in page
    big = io.BytesIO(b"a " * (700 * 1024))
    response = upload(client, [(big, "big.txt")])
    assert response.status_code == 413 and "larger than the limit of 1 MB" in response.get_data(as_text=True)
    assert site.extensions["jobs"].list() == []
    # several files, together over one file's limit: each is judged on its own, the good ones kept
    files = [(io.BytesIO(b"b " * (300 * 1024)), "one.txt"), (io.BytesIO(b"c " * (300 * 1024)), "two.txt"),
             (io.BytesIO(b"a " * (700 * 1024)), "big.txt")]
    assert upload(client, files).status_code == 302
    assert sorted(j.original_name for j in site.extensions["jobs"].list()) == ["one.txt", "two.txt"]
    assert "big.txt was not accepted: larger than the limit of 1 MB" in client.get("/admin/jobs").get_data(as_text=True)
    many = [(io.BytesIO(b"x"), f"f{n}.txt") for n in range(21)]
    response = upload(client, many)
    assert response.status_code == 400 and "at most 20 files" in response.get_data(as_text=True)
    # only a curator's upload form may be that large: anyone else's request stops at one file's size
    assert site.test_client().post("/login", data={"name": "x" * (2 * 1024 * 1024)}).status_code == 413
    again = [(io.BytesIO(b"b " * (300 * 1024)), "one.txt"), (io.BytesIO(b"c " * (300 * 1024)), "two.txt")]
    assert upload(sign_in(site, "par"), again).status_code == 413


def test_duplicate_upload_waits_for_a_decision(site):
    client = sign_in(site, "cur")
    body = b"# Allotments in Croydon\n\nResidents grow vegetables together on allotments.\n"
    for choice, expected in (("cancel", "cancelled"), ("keep", "done"), ("replace", "done")):
        upload(client, [(io.BytesIO(body), "again.md")])
        job = finish(site)[0]
        assert job.status == "needs_decision" and "already stored" in job.message
        assert f'href="/doc/{job.duplicate_of}"' in client.get("/admin/jobs").get_data(as_text=True)
        client.post(f"/admin/jobs/{job.id}/decide", data={"csrf_token": token(client, "/admin/jobs"), "choice": choice})
        job = site.extensions["jobs"].get(finish(site)[0].id)
        assert job.status == expected
    kb = site.extensions["kb"]
    assert kb.store.count() == 3  # cancel added nothing, keep added one, replace swapped one for one
    assert kb.check()["in_step"]


def test_an_uploaded_replacement_outlasts_re_ingesting_the_unchanged_file(site, tmp_path):
    client, kb = sign_in(site, "cur"), site.extensions["kb"]
    text = " ".join(f"Residents of street {n} grow vegetables together on the allotments." for n in range(40))
    (tmp_path / "mine").mkdir()
    path = tmp_path / "mine" / "allotments.md"
    path.write_text(f"# Allotments\n\n{text}\n")
    doc_id = ingest_paths(kb, [path]).items[0].doc_id
    upload(client, [(io.BytesIO(f"# Allotments\n\n{text} Every Saturday.\n".encode()), "fixed.md")],
           visibility="partners", site="Croydon")  # the form's default visibility, and a site chosen
    job = finish(site)[0]
    assert job.status == "needs_decision" and job.duplicate_of == doc_id
    client.post(f"/admin/jobs/{job.id}/decide", data={"csrf_token": token(client, "/admin/jobs"), "choice": "replace"})
    finish(site)
    replaced = kb.store.get(doc_id)  # the same document, now holding the upload; who may see it is unchanged
    assert (replaced.visibility, replaced.site) == ("public", "Croydon")
    assert "Every Saturday" in kb.store.body(doc_id) and b"Every Saturday" in kb.files.read(replaced.stored_path)
    assert ingest_paths(kb, [path]).items[0].status == "unchanged"
    assert "Every Saturday" in kb.store.body(doc_id) and b"Every Saturday" in kb.files.read(replaced.stored_path)
    moved = path.with_name("allotments-2024.md")  # renamed: the document, upload and all, follows it
    path.rename(moved)
    report = ingest_paths(kb, [tmp_path / "mine"], prune=True)
    assert [(i.status, i.doc_id) for i in report.items if i.doc_id == doc_id] == [("moved", doc_id)]
    assert "Every Saturday" in kb.store.body(doc_id) and kb.store.get(doc_id).site == "Croydon"
    path = moved
    path.write_text("# Allotments\n\nThe allotments moved to the park.\n")  # a newer change to the file wins
    assert ingest_paths(kb, [path]).items[0].status == "updated"
    assert "moved to the park" in kb.store.body(doc_id)


def test_edit_retire_restore_delete_and_audit(site):
    client = sign_in(site, "cur")
    kb = site.extensions["kb"]
    doc = next(d for d in kb.store.documents() if d.site == "Croydon")
    embedded = kb.store.count("embeddings")
    form = {"csrf_token": token(client, f"/admin/documents/{doc.id}"), "title": f"Growing food {XSS}",
            "site": "Newham", "doc_type": "profile", "tags": "food; growing", "visibility": "public",
            "partnership": "", "published": "2022-03-04"}
    assert client.post(f"/admin/documents/{doc.id}", data=form).status_code == 302
    hit = site.test_client().get("/api/search?q=vegetables+allotments&k=1").get_json()["hits"][0]
    assert (hit["title"], hit["site"], hit["published"]) == (f"Growing food {XSS}", "Newham", "2022-03-04")
    assert kb.store.count("embeddings") == embedded
    html = site.test_client().get("/?q=vegetables").get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;" in html

    t = token(client, "/admin/documents")
    client.post(f"/admin/documents/{doc.id}/retire", data={"csrf_token": t})
    assert not site.test_client().get("/api/search?q=vegetables+allotments").get_json()["hits"]
    assert site.test_client().get(f"/doc/{doc.id}").status_code == 404
    client.post(f"/admin/documents/{doc.id}/restore", data={"csrf_token": t})
    assert site.test_client().get("/api/search?q=vegetables+allotments").get_json()["hits"]
    assert kb.files.read(doc.stored_path)
    client.post(f"/admin/documents/{doc.id}/delete", data={"csrf_token": t})
    assert kb.store.count() == 1 and kb.check()["in_step"]
    with pytest.raises(NotFound):  # the original went with it, from the folder or the database
        kb.files.read(doc.stored_path)

    log = client.get("/admin/audit").get_data(as_text=True)
    for action in ("login", "edit", "retire", "restore", "delete"):
        assert f"<td>{action}</td>" in log
    assert "<script>alert" not in log


def test_a_changed_file_keeps_its_id_retirement_and_curator_edits(site, tmp_path):
    kb = site.extensions["kb"]
    client = sign_in(site, "cur")
    doc = next(d for d in kb.store.documents() if d.site == "Croydon")
    form = {"csrf_token": token(client, f"/admin/documents/{doc.id}"), "title": "Allotments, as the curator named it",
            "site": "Croydon", "doc_type": "", "tags": "", "visibility": "public", "partnership": "",
            "published": "5 March 2021"}
    assert client.post(f"/admin/documents/{doc.id}", data=form).status_code == 302
    assert kb.store.get(doc.id).published == "2021-03-05"  # stored as the date it means
    client.post(f"/admin/documents/{doc.id}/retire", data={"csrf_token": token(client, "/admin/documents")})
    path = tmp_path / "docs" / "public.md"
    path.write_text("# Allotments in Croydon\n\nBeekeepers keep hives beside the allotments now.\n")
    assert ingest_paths(kb, [path]).items[0].status == "updated"
    after = kb.store.get(doc.id)
    assert (after.status, after.title, after.published) == ("retired", "Allotments, as the curator named it",
                                                             "2021-03-05")
    query = "/api/search?q=beekeepers+hives&k=10"
    assert all(h["doc_id"] != doc.id for h in site.test_client().get(query).get_json()["hits"])
    client.post(f"/admin/documents/{doc.id}/restore", data={"csrf_token": token(client, "/admin/documents")})
    hits = site.test_client().get(query).get_json()["hits"]
    assert hits[0]["doc_id"] == doc.id and "hives" in hits[0]["text"]


def test_health_and_downloads_say_nothing_of_hidden_documents(site, tmp_path):
    anonymous, curator = site.test_client(), sign_in(site, "cur")
    health = anonymous.get("/healthz").get_json()
    assert (health["status"], health["documents"]) == ("ok", 1)
    assert set(health) == {"status", "node", "database", "documents"}  # no count of what it may not see
    assert curator.get("/healthz").get_json()["documents"] == 2 and "vectors" in curator.get("/healthz").get_json()
    kb = site.extensions["kb"]
    public = next(d for d in kb.store.documents() if d.visibility == "public")
    secret = next(d for d in kb.store.documents() if d.visibility == "partners")
    assert anonymous.get(f"/doc/{public.id}/file").headers["Cache-Control"] == "no-cache"  # revalidated: see below
    assert curator.get(f"/doc/{secret.id}/file").headers["Cache-Control"] == "private, no-store"
    copy = tmp_path / "copy.md"  # a public near-copy of the partners-only document
    copy.write_text((tmp_path / "docs" / "secret.md").read_text() + "\nShared with everyone.\n")
    copy_id = ingest_paths(kb, [copy]).items[0].doc_id
    assert kb.store.get(copy_id).dup_of == secret.id
    assert anonymous.get(f"/api/documents/{copy_id}").get_json()["dup_of"] is None
    assert curator.get(f"/api/documents/{copy_id}").get_json()["dup_of"] == secret.id


def test_sign_in_failures_are_logged_and_slowed_down(site):
    client = site.test_client()
    for _ in range(5):
        response = client.post("/login", data={"name": "cur", "password": "wrong", "csrf_token": token(client)})
        assert response.status_code == 401
    response = client.post("/login", data={"name": "cur", "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 429 and "too many failed sign-ins" in response.get_data(as_text=True)
    entries = [e.action for e in __import__("kb.audit", fromlist=["entries"]).entries(site.extensions["kb"].store)]
    assert entries.count("login_failed") == 5 and "login_blocked" in entries


def test_session_cookie_flags_and_open_redirects(site):
    client = site.test_client()
    response = client.post("/login", data={"name": "cur", "password": PASSWORD, "csrf_token": token(client),
                                           "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_signing_out_ends_the_session_wherever_its_cookie_went(site):
    client = sign_in(site, "cur")
    stolen = site.test_client()
    stolen.set_cookie("session", client.get_cookie("session").value)
    assert stolen.get("/admin/documents").status_code == 200
    client.post("/logout", data={"csrf_token": token(client, "/admin/documents")})
    response = stolen.get("/admin/documents")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    again = sign_in(site, "par")  # removing an account ends its sessions too
    Accounts(site.extensions["kb"].store).remove("par")
    assert again.get("/api/stats").get_json()["documents"] == 1


def test_reembed_job_rebuilds_the_index(site):
    client = sign_in(site, "cur")
    client.post("/admin/reindex", data={"csrf_token": token(client, "/admin/jobs")})
    job = finish(site)[0]
    assert job.kind == "reembed" and job.status == "done" and "index rebuilt" in job.message
    assert site.extensions["kb"].check()["in_step"]


def test_anonymous_search_can_be_turned_off(tmp_path, model):
    from web import create_app

    settings = Settings(data_dir=tmp_path / "data", anonymous_search=False)
    app = create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=KnowledgeBase.open(settings, model))
    client = app.test_client()
    assert client.get("/api/search?q=x").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/login").status_code == 200


def test_user_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["--data", str(tmp_path), "user", "add", "maria", "--role", "partner", "--password-stdin"]) == 0
    assert main(["--data", str(tmp_path), "user", "list"]) == 0
    assert "maria" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--data", str(tmp_path), "user", "add", "bob", "--role", "curator", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "user", "remove", "maria"]) == 0
    assert main(["--data", str(tmp_path), "user", "remove", "maria"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script, no terminal to ask on
    assert main(["--data", str(tmp_path), "user", "add", "carol", "--role", "curator"]) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_each_queued_job_is_claimed_by_one_process_only(tmp_path, database_url):
    from kb.jobs import Jobs

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", model="fake", database_url=database_url))
    other = KnowledgeBase.open(Settings(data_dir=tmp_path / "data2", model="fake", database_url=database_url)
                               if database_url else Settings(data_dir=tmp_path / "data", model="fake"))  # a second server
    mine, theirs = Jobs(kb.store), Jobs(other.store)
    first, second = mine.create("reembed", "cur"), mine.create("reembed", "cur")
    assert mine.claim_next("host-a:1").id == first.id
    assert theirs.claim_next("host-a:2").id == second.id
    assert mine.claim_next("host-a:1") is None
    # a job whose worker stopped beating goes back to the queue; one still beating stays its worker's
    sql_run(kb.store, "UPDATE jobs SET updated_at = '2020-01-01T00:00:00+00:00' WHERE id IN (?, ?)",
            first.id, second.id)
    theirs.heartbeat(second.id)
    assert theirs.requeue_stale() == 1
    assert {j.id: j.status for j in mine.list()} == {first.id: "queued", second.id: "running"}
    assert theirs.claim_next("host-b:3").id == first.id
    # at start, a job whose process on this machine is gone is requeued at once, without the lease
    from kb.jobs import this_process

    host = this_process().rpartition(":")[0]
    sql_run(kb.store, "UPDATE jobs SET owner = ? WHERE id = ?", f"{host}:{2**22 + 7}", first.id)  # beyond pid_max
    sql_run(kb.store, "UPDATE jobs SET owner = ? WHERE id = ?", f"{host}:1", second.id)  # alive: pid 1
    assert mine.requeue_orphans() == 1
    assert {j.id: j.status for j in mine.list()} == {first.id: "queued", second.id: "running"}


def test_documents_without_a_site_have_a_heat_map_column_but_no_site_link(site, tmp_path):
    from kb import themes

    kb = site.extensions["kb"]
    for n in range(3):
        (tmp_path / f"loose{n}.md").write_text(f"# Loose notes {n}\n\n" + "Volunteers planted gardens; gardens fed volunteers. " * 5)
    ingest_paths(kb, [tmp_path / f"loose{n}.md" for n in range(3)])  # no site given
    with kb.writing():
        themes.build(kb, k=2)
    html = site.test_client().get("/themes").get_data(as_text=True)
    assert f"<th scope=\"col\">{themes.NO_SITE}</th>" in html and "/site/(no" not in html


def test_a_nul_in_a_sign_in_name_is_a_failed_sign_in_not_an_error(site):
    client = site.test_client()
    response = client.post("/login", data={"name": "cur\x00", "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code in (200, 400, 401)


def test_a_job_that_meets_another_writer_goes_back_to_the_queue_and_runs(site, monkeypatch):
    """Busy (another process held the writer lock too long) is a passing condition, not a failure."""
    import web.worker
    from kb.errors import Busy

    tries, real = [], web.worker.run_upload

    def busy_once(kb, jobs, job, decision=None):
        tries.append(job.id)
        if len(tries) == 1:
            raise Busy("another process is writing to this collection; try again when it ends")
        return real(kb, jobs, job, decision=decision)

    monkeypatch.setattr(web.worker, "run_upload", busy_once)
    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(b"Beekeepers in Leeds keep hives on allotment roofs."), "bees.txt")])
    jobs = finish(site)
    assert len(tries) == 2 and tries[0] == tries[1]  # the same job, taken again
    assert jobs[0].status == "done" and jobs[0].doc_id is not None


def test_a_change_through_one_node_is_in_every_nodes_next_request(site, tmp_path, model, database_url):
    """Two apps on one PostgreSQL database (two web nodes): an edit, a retirement, a restore and a
    deletion made through node A show at once in searches and pages served by node B,
    whose caches were warm."""
    if not database_url:
        pytest.skip("one web node per data folder with SQLite")
    from web import create_app

    settings = Settings(data_dir=tmp_path / "node-b", database_url=database_url, secret_key="a key every node shares")
    node_b = create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=KnowledgeBase.open(settings, model))
    b = node_b.test_client()
    query = "/api/search?q=vegetables+allotments&k=1"
    doc_id = b.get(query).get_json()["hits"][0]["doc_id"]  # B's caches are warm now
    curator = sign_in(site, "cur")  # on node A
    form = {"csrf_token": token(curator, f"/admin/documents/{doc_id}"), "title": "Growing food together",
            "site": "Newham", "doc_type": "profile", "tags": "food", "visibility": "public", "partnership": "",
            "published": "2022-03-04"}
    assert curator.post(f"/admin/documents/{doc_id}", data=form).status_code == 302
    assert b.get(query).get_json()["hits"][0]["title"] == "Growing food together"
    assert "Newham" in b.get("/?q=vegetables").get_data(as_text=True)  # facets from B's new view
    t = token(curator, "/admin/documents")
    curator.post(f"/admin/documents/{doc_id}/retire", data={"csrf_token": t})
    assert b.get(query).get_json()["hits"] == [] and b.get(f"/doc/{doc_id}").status_code == 404
    curator.post(f"/admin/documents/{doc_id}/restore", data={"csrf_token": t})
    assert b.get(query).get_json()["hits"][0]["doc_id"] == doc_id
    curator.post(f"/admin/documents/{doc_id}/delete", data={"csrf_token": t})
    assert all(h["doc_id"] != doc_id for h in b.get(query).get_json()["hits"])
    assert b.get(f"/doc/{doc_id}").status_code == 404
    node_b.extensions["kb"].close()


@pytest.mark.parametrize("back", ["https://evil.example/phish", "//evil.example/x", "/\\evil.example/x",
                                  "javascript:alert(1)", "/admin/documents\r\nSet-Cookie: x=1"])
def test_retire_and_sign_in_never_redirect_off_the_site(site, back):
    client = sign_in(site, "cur")
    doc = site.extensions["kb"].store.documents()[0]
    t = token(client, "/admin/documents")
    for action in ("retire", "restore"):
        response = client.post(f"/admin/documents/{doc.id}/{action}", data={"csrf_token": t, "back": back})
        assert response.status_code == 302 and response.headers["Location"] == "/admin/documents"
    other = site.test_client()
    response = other.post("/login", data={"name": "cur", "password": PASSWORD, "csrf_token": token(other),
                                          "next": back})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_retire_goes_back_to_the_page_it_came_from(site):
    client = sign_in(site, "cur")
    doc = site.extensions["kb"].store.documents()[0]
    response = client.post(f"/admin/documents/{doc.id}/retire",
                           data={"csrf_token": token(client, "/admin/documents"), "back": "/admin/documents?sort=title"})
    assert response.headers["Location"] == "/admin/documents?sort=title"


def test_the_edit_form_refuses_a_title_longer_than_its_limit_but_keeps_a_long_ingested_one(site):
    client = sign_in(site, "cur")
    kb = site.extensions["kb"]
    doc = kb.store.documents()[0]
    form = {"csrf_token": token(client, f"/admin/documents/{doc.id}"), "title": "x" * 100_000, "visibility": "public"}
    response = client.post(f"/admin/documents/{doc.id}", data=form)
    assert response.status_code == 400 and "at most 300" in response.get_data(as_text=True)
    assert kb.store.get(doc.id).title == doc.title
    long_title = ("A long title " * 30).strip()  # as a file's own title may be
    kb.update(doc.id, {"title": long_title})
    form.update(title=long_title, site="Newham")  # the form sends it back unchanged
    assert client.post(f"/admin/documents/{doc.id}", data=form).status_code == 302
    assert kb.store.get(doc.id).site == "Newham"


def test_nothing_a_signed_in_user_sees_is_stored_and_a_restricted_original_is_not_served_from_a_cache(site):
    kb = site.extensions["kb"]
    public = next(d for d in kb.store.documents() if d.visibility == "public")
    for name in ("cur", "par"):
        client = sign_in(site, name)
        for url in ("/", "/?q=allotments", f"/doc/{public.id}", f"/doc/{public.id}/file", "/api/stats",
                    "/api/search?q=allotments", "/themes", "/admin/documents"):
            response = client.get(url)
            assert response.headers["Cache-Control"] == "private, no-store", (name, url)
            assert "cookie" in {v.lower() for v in response.vary}, (name, url)
    anonymous = site.test_client()
    response = anonymous.get(f"/doc/{public.id}/file")
    assert response.cache_control.no_cache and not response.cache_control.public and response.cache_control.max_age is None
    etag = response.headers["ETag"]
    assert anonymous.get(f"/doc/{public.id}/file", headers={"If-None-Match": etag}).status_code == 304
    kb.update(public.id, {"visibility": "partners"})  # a curator restricts it: a cache asking again is refused
    assert anonymous.get(f"/doc/{public.id}/file", headers={"If-None-Match": etag}).status_code == 404
    assert anonymous.get(f"/doc/{public.id}", headers={"If-None-Match": etag}).status_code == 404


def test_the_data_folder_and_what_kb_keeps_in_it_are_private(tmp_path, model):
    """It holds password hashes, the session key and documents not every reader may see: 0700
    folders and 0600 files wherever kb makes them, whatever the umask lets others read."""
    import os
    import stat

    from ingest.upload import stage
    from web import create_app

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    old = os.umask(0o022)
    try:
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "notes.md").write_text("# Notes\n\nResidents grow vegetables together.\n")
        settings = Settings(data_dir=tmp_path / "srv" / "data")
        kb = KnowledgeBase.open(settings, model)
        doc = kb.store.get(ingest_paths(kb, [tmp_path / "docs"]).items[0].doc_id)
        create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
        Accounts(kb.store).add("cur", "curator", PASSWORD)
        staged = stage(kb, b"# Upload\n\nGarden notes.\n", "upload.md")
        data = kb.data_dir
        assert mode(data) == mode(data.parent) == 0o700  # both made by kb
        for path in (data / "kb.sqlite3", data / "kb.sqlite3-wal", data / "kb.sqlite3-shm", data / "secret.key",
                     data / doc.stored_path, data / staged):
            assert mode(path) == 0o600, path
        for folder in (data / "files", (data / doc.stored_path).parent, data / "uploads", data / "index"):
            assert mode(folder) == 0o700, folder
        assert mode(tmp_path / "docs") == 0o755  # what kb did not make, it leaves alone
        kb.close()
        # an older data folder, made before this: its database, key and folders of files are closed on open
        for path in (data / "kb.sqlite3", data / "secret.key"):
            path.chmod(0o644)
        for folder in (data / "files", data / "uploads"):
            folder.chmod(0o755)
        KnowledgeBase.open(settings, model).close()
        create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=KnowledgeBase.open(settings, model))
        assert [mode(p) for p in (data / "kb.sqlite3", data / "secret.key", data / "files", data / "uploads")] == \
            [0o600, 0o600, 0o700, 0o700]
    finally:
        os.umask(old)


def test_a_long_file_name_is_cut_before_its_extension(site):
    client = sign_in(site, "cur")
    name = "Community garden report, " * 12 + "final.md"  # 308 characters
    upload(client, [(io.BytesIO(b"# Notes\n\nHarmless community notes about gardens."), name)])
    job = finish(site)[0]
    assert job.status == "done", job.message
    assert len(job.original_name) == 200 and job.original_name == name[:197].rstrip(". ") + ".md"
    assert site.extensions["kb"].store.get(job.doc_id).stored_path.endswith(".md")


@pytest.mark.parametrize("name, shown", [
    ("a" * 300 + ".docx", "a" * 195 + ".docx"),
    ("a" * 300, "a" * 200),
    ("a" * 150 + "." + "b" * 150, "a" * 150 + "." + "b" * 49),  # no extension that long: cut as it is
    ("short.md", "short.md"),
])
def test_safe_names_stay_within_200_characters_and_keep_a_short_extension(name, shown):
    from ingest.upload import safe_name

    assert safe_name(name) == shown


def test_the_upload_form_offers_every_type_kb_reads(site):
    from ingest.detect import SUPPORTED

    page = sign_in(site, "cur").get("/admin/upload").get_data(as_text=True)
    accept = re.search(r'<input id="files"[^>]* accept="([^"]+)"', page).group(1).split(",")
    assert sorted(accept) == sorted(SUPPORTED) and {".pptx", ".xlsx", ".csv", ".eml", ".msg", ".odt", ".rtf",
                                                    ".epub"} <= set(accept)
    assert f"Files ({SUPPORTED_NAMES}; up to" in page


def test_outlook_messages_are_taken_and_locked_workbooks_refused_by_their_own_names(site):
    from support.ole import make_msg, make_ole

    client = sign_in(site, "cur")
    upload(client, [(io.BytesIO(make_msg("Minutes", "The group met.")), "minutes.msg"),
                    (io.BytesIO(make_ole(["EncryptionInfo", "EncryptedPackage"])), "budget.xlsx")])
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "minutes.msg was not accepted" not in page
    assert "budget.xlsx was not accepted: unsupported file: a password-protected Excel workbook (.xlsx)" in page
    assert "old Office" not in page and [j.original_name for j in site.extensions["jobs"].list()] == ["minutes.msg"]
