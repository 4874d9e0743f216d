"""The ingest run: metadata sources and their precedence, duplicates, symlinks, manifests."""

from __future__ import annotations

import json
import os

import pytest

from ingest.pipeline import ingest_paths
from kb.models import DocMeta
from support.db import rows as sql_rows


def files(tmp_path, contents: dict[str, str]):
    """A folder `docs` holding these files (name -> text)."""
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in contents.items():
        (folder / name).write_text(text)
    return folder


def by_name(kb, name):
    return next(d for d in kb.store.documents(include_retired=True) if d.original_name == name)


def test_metadata_precedence_file_manifest_sidecar_flags(fake_kb, tmp_path):
    folder = files(tmp_path, {"a.md": "---\ntitle: From front matter\ndate: 2020-01-01\n---\nSome text here.\n",
                             "b.md": "# Heading title\n\nOther text.\n"})
    (folder / "manifest.csv").write_text(
        "path,title,doc_type,site,published,tags,visibility\n"
        "a.md,From manifest,guidance,Leeds,2021-05-01,alpha;beta,public\n"
        "b.md,,profile,Newham,,gamma,\n")
    (folder / "a.md.meta.json").write_text(json.dumps({"site": "Croydon", "tags": ["delta"]}))
    report = ingest_paths(fake_kb, [folder], DocMeta(tags=["flagged"], visibility="partners"))
    assert report.ok and report.count("added") == 2
    a, b = by_name(fake_kb, "a.md"), by_name(fake_kb, "b.md")
    assert (a.title, a.doc_type, a.site, a.published) == ("From manifest", "guidance", "Croydon", "2021-05-01")
    assert a.tags == ["alpha", "beta", "delta", "flagged"] and a.visibility == "partners"
    assert (b.title, b.site, b.doc_type) == ("Heading title", "Newham", "profile")


def test_manifest_metadata_change_updates_without_reloading(fake_kb, tmp_path):
    folder = files(tmp_path, {"a.txt": "Plain words.",
                             "manifest.csv": "path,site\na.txt,Leeds\n"})
    ingest_paths(fake_kb, [folder])
    (folder / "manifest.csv").write_text("path,site\na.txt,Plymouth\n")
    report = ingest_paths(fake_kb, [folder])
    assert report.items[0].status == "updated" and report.items[0].reason == "metadata only"
    assert by_name(fake_kb, "a.txt").site == "Plymouth"


def test_a_moved_file_keeps_its_document_and_prune_keeps_it_too(fake_kb, tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Board minutes\n\nThe board met in March.")
    ingest_paths(fake_kb, [folder])
    doc = by_name(fake_kb, "a.md")
    fake_kb.update(doc.id, {"visibility": "curators"})
    fake_kb.set_status(doc.id, "retired")
    (folder / "a.md").rename(folder / "sub" / "minutes.md")
    report = ingest_paths(fake_kb, [folder], prune=True)
    assert [(i.status, i.doc_id) for i in report.items] == [("moved", doc.id)]
    assert report.summary()["moved"] == 1
    after = fake_kb.store.get(doc.id)
    assert (after.source, after.original_name) == (str((folder / "sub" / "minutes.md").resolve()), "minutes.md")
    assert (after.visibility, after.status) == ("curators", "retired")
    assert [i.status for i in ingest_paths(fake_kb, [folder], prune=True).items] == ["unchanged"]


def test_a_curator_edit_outlasts_re_ingesting_the_same_file(fake_kb, tmp_path):
    folder = files(tmp_path, {"a.txt": "Words.",
                             "a.txt.meta.json": json.dumps({"title": "From the sidecar", "site": "Leeds"})})
    ingest_paths(fake_kb, [folder])
    doc = by_name(fake_kb, "a.txt")
    fake_kb.update(doc.id, {"title": "Chosen by a curator"})
    report = ingest_paths(fake_kb, [folder])
    assert report.items[0].status == "unchanged"
    assert (fake_kb.store.get(doc.id).title, fake_kb.store.get(doc.id).site) == ("Chosen by a curator", "Leeds")
    (folder / "a.txt.meta.json").write_text(json.dumps({"title": "From the sidecar", "site": "Newham"}))
    assert ingest_paths(fake_kb, [folder]).items[0].status == "updated"  # the site was never edited by hand
    assert (fake_kb.store.get(doc.id).title, fake_kb.store.get(doc.id).site) == ("Chosen by a curator", "Newham")


def test_a_path_keeps_its_document_and_bytes_follow_only_a_file_that_left(fake_kb, tmp_path):
    folder = files(tmp_path, {"a.md": "# Alpha\n\nAlpha words.",
                             "b.md": "# Beta\n\nBeta words."})
    ingest_paths(fake_kb, [folder])
    alpha, beta = by_name(fake_kb, "a.md"), by_name(fake_kb, "b.md")
    # a.md renamed to c.md and a new a.md written: c.md is new content, not a duplicate of a.md's document
    (folder / "a.md").rename(folder / "c.md")
    (folder / "a.md").write_text("# Gamma\n\nGamma words.")
    outcome = {os.path.basename(i.name): i.status for i in ingest_paths(fake_kb, [folder]).items}
    assert outcome == {"a.md": "updated", "b.md": "unchanged", "c.md": "added"}
    assert fake_kb.store.get(alpha.id).title == "Gamma" and by_name(fake_kb, "c.md").title == "Alpha"
    # a.md changed to b.md's very bytes: still a.md's document, now with that text
    (folder / "a.md").write_text((folder / "b.md").read_text())
    outcome = {os.path.basename(i.name): i.status for i in ingest_paths(fake_kb, [folder]).items}
    assert outcome["a.md"] == "updated" and fake_kb.store.get(alpha.id).title == "Beta"
    assert fake_kb.store.get(beta.id).title == "Beta"


def test_command_line_flags_override_a_curator_edit_and_other_metadata_does_not(fake_kb, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Words.")
    ingest_paths(fake_kb, [path])
    doc = by_name(fake_kb, "a.txt")
    fake_kb.update(doc.id, {"visibility": "partners", "site": "Leeds"})
    (tmp_path / "a.txt.meta.json").write_text(json.dumps({"visibility": "public", "site": "Newham"}))
    assert ingest_paths(fake_kb, [path]).items[0].status == "unchanged"  # the sidecar yields to the curator
    report = ingest_paths(fake_kb, [path], DocMeta(visibility="curators"))
    assert report.items[0].status == "updated"
    after = fake_kb.store.get(doc.id)
    assert (after.visibility, after.site) == ("curators", "Leeds")


def test_replacing_a_file_leaves_no_old_copy_or_cached_vectors(fake_kb, tmp_path):
    path = tmp_path / "a.md"
    path.write_text("# Draft\n\nConfidential draft one about the allotment budget.")
    ingest_paths(fake_kb, [path])
    first = by_name(fake_kb, "a.md")
    path.write_text("# Final\n\nThe final allotment plan, agreed by everyone.")
    assert ingest_paths(fake_kb, [path]).items[0].status == "updated"
    second = by_name(fake_kb, "a.md")
    assert second.id == first.id and second.stored_path != first.stored_path
    assert not (fake_kb.data_dir / first.stored_path).exists()
    assert fake_kb.store.count("embeddings") == second.chunk_count
    fake_kb.remove(second.id)
    assert fake_kb.store.count("embeddings") == 0 and not list((fake_kb.data_dir / "files").rglob("*.md"))


def test_manifest_lists_missing_file_and_bad_metadata(fake_kb, tmp_path):
    folder = files(tmp_path, {"ok.txt": "Fine.",
                             "bad.txt": "Fine too."})
    (folder / "manifest.csv").write_text("path,published,visibility\nok.txt,2021-01-01,public\n"
                                        "bad.txt,someday,public\ngone.txt,,\n")
    report = ingest_paths(fake_kb, [folder])
    reasons = {os.path.basename(i.name): (i.status, i.reason) for i in report.items}
    assert reasons["ok.txt"][0] == "added"
    assert reasons["bad.txt"][0] == "failed" and "not a date" in reasons["bad.txt"][1]
    assert reasons["gone.txt"] == ("failed", "listed in manifest.csv but missing")


def test_same_bytes_are_skipped_as_duplicates(fake_kb, tmp_path):
    folder = files(tmp_path, {"one.txt": "Identical content in two files.",
                             "two.txt": "Identical content in two files."})
    report = ingest_paths(fake_kb, [folder])
    outcome = {os.path.basename(i.name): i for i in report.items}
    assert (outcome["one.txt"].status, outcome["two.txt"].status) == ("added", "duplicate")
    assert "same bytes as" in outcome["two.txt"].reason
    assert fake_kb.store.count() == 1


@pytest.mark.parametrize("follow", [False, True])
def test_symlinks_are_not_followed_by_default_and_never_outside(fake_kb, tmp_path, follow):
    outside = tmp_path / "secret.txt"
    outside.write_text("Secret words outside the folder.")
    folder = files(tmp_path, {"inside.txt": "Inside words."})
    (folder / "link-out.txt").symlink_to(outside)
    (folder / "link-in.txt").symlink_to(folder / "inside.txt")
    object.__setattr__(fake_kb.settings, "follow_symlinks", follow)
    report = ingest_paths(fake_kb, [folder])
    outcome = {os.path.basename(i.name): i for i in report.items}
    assert outcome["link-out.txt"].status == "skipped"
    assert "symbolic link" in outcome["link-out.txt"].reason
    assert outcome["inside.txt"].status == "added"
    assert outcome["link-in.txt"].status == ("duplicate" if follow else "skipped")
    assert report.ok  # a link not followed is skipped, not failed
    assert all("Secret" not in r[0] for r in sql_rows(fake_kb.store, "SELECT text FROM chunks"))


def test_every_file_under_a_folder_gets_a_line_and_skipped_files_are_not_failures(fake_kb, tmp_path):
    folder = files(tmp_path, {"notes.md": "# Notes\n\nWords worth keeping.", "deck.key": "PK keynote",
                             "scan.png": "a picture", "README": "no extension", ".DS_Store": "finder"})
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]")
    (folder / "link.md").symlink_to(folder / "notes.md")
    (folder / "notes.md.meta.json").write_text('{"site": "Leeds"}')  # read with notes.md: no line of its own
    listed = folder / "listed"
    listed.mkdir()
    (listed / "manifest.csv").write_text("path\nin.txt\n")
    (listed / "in.txt").write_text("Listed words.")
    (listed / "out.txt").write_text("Unlisted words.")
    (listed / "old").mkdir()
    (listed / "old" / "draft.txt").write_text("An old draft.")
    object.__setattr__(fake_kb.settings, "ocr", False)
    report = ingest_paths(fake_kb, [folder])
    lines = {os.path.relpath(i.name, folder): (i.status, i.reason) for i in report.items}
    assert lines == {
        "notes.md": ("added", ""),
        os.path.join("listed", "in.txt"): ("added", ""),
        "deck.key": ("skipped", "unsupported file type: Apple Keynote (.key)"),
        "scan.png": ("skipped", "an image: its text is read only by OCR, which is off (KB_OCR=0)"),
        "README": ("skipped", "unsupported file type: (no extension)"),
        ".DS_Store": ("skipped", "hidden file"),
        ".git": ("skipped", "hidden folder: not read"),
        "link.md": ("skipped", "symbolic link not followed (set KB_FOLLOW_SYMLINKS=1 to follow)"),
        os.path.join("listed", "out.txt"): ("skipped", "not listed in manifest.csv"),
        os.path.join("listed", "old"): ("skipped", "folder not listed in manifest.csv"),
    }
    assert report.ok and report.summary()["skipped"] == 6 + 2


def test_oversized_file_is_refused_before_reading(fake_kb, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a " * (1024 * 1024 + 10))
    object.__setattr__(fake_kb.settings, "max_file_mb", 1)
    report = ingest_paths(fake_kb, [big])
    assert report.items[0].status == "failed" and "file too large" in report.items[0].reason


def test_missing_path_is_reported(fake_kb, tmp_path):
    report = ingest_paths(fake_kb, [tmp_path / "nope"])
    assert report.items[0].status == "failed" and report.items[0].reason == "no such file or folder"


def test_an_edit_made_while_a_new_version_embeds_is_kept(tmp_path):
    from conftest import FakeEmbedder
    from kb.collection import KnowledgeBase
    from kb.settings import Settings

    class EditingMeanwhile(FakeEmbedder):
        edit = None

        def encode(self, texts):
            if self.edit:
                self.edit()  # a curator saves the edit form while the new version is being embedded
            return super().encode(texts)

    embedder = EditingMeanwhile()
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", model="fake"), embedder)
    path = tmp_path / "a.md"
    path.write_text("# Plan\n\nFirst draft of the plan.")
    ingest_paths(kb, [path])
    doc = by_name(kb, "a.md")
    path.write_text("# Plan\n\nSecond draft of the plan, with the budget.")
    embedder.edit = lambda: kb.update(doc.id, {"visibility": "curators", "site": "Croydon"})
    assert ingest_paths(kb, [path]).items[0].status == "updated"
    after = kb.store.get(doc.id)
    assert (after.visibility, after.site) == ("curators", "Croydon")
    kb.close()
