"""The sample corpus: manifest and files agree, it ingests cleanly, and users' questions find answers."""

from __future__ import annotations

import csv
from datetime import date

import pytest

from conftest import CORPUS
from kb.search import Searcher
from support.db import rows as sql_rows

DOC_TYPES = {"announcement", "learning-report", "guidance", "profile"}
SITES = {"Programme", "Coventry", "Croydon", "Gloucestershire", "Leeds", "Newham", "Plymouth"}


def manifest_rows() -> list[dict]:
    with open(CORPUS / "manifest.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def questions() -> list[tuple[str, str]]:
    with open(CORPUS / "questions.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [(r["question"], r["expected_path"]) for r in rows]


def test_manifest_and_files_agree():
    rows = manifest_rows()
    listed = {r["path"] for r in rows}
    on_disk = {str(p.relative_to(CORPUS)) for p in (CORPUS / "docs").rglob("*") if p.is_file()}
    assert listed == on_disk
    assert len(listed) == len(rows), "a file is listed twice"
    for row in rows:
        assert row["title"].strip() and row["source_publication"].strip()
        assert row["doc_type"] in DOC_TYPES
        assert row["site"] in SITES
        assert row["visibility"] in {"public", "partners", "curators"}
        date.fromisoformat(row["published"])
    suffixes = {p.rsplit(".", 1)[-1] for p in listed}
    assert {"pdf", "html", "md", "txt", "docx"} <= suffixes


def test_corpus_ingests_without_failure(corpus_kb):
    report = corpus_kb.ingest_report
    assert report.ok, [(i.name, i.reason) for i in report.failed]
    assert report.count("added") == len(manifest_rows())
    doc = corpus_kb.store.find(str((CORPUS / "docs/profile-newham.md").resolve()))
    assert (doc.site, doc.doc_type, doc.partnership) == ("Newham", "profile", "Well Newham")


def test_site_chrome_is_stripped_from_html_pages(corpus_kb):
    texts = " ".join(r[0] for r in sql_rows(corpus_kb.store, "SELECT text FROM chunks"))
    assert "Senior Project Manager (Regeneration)" not in texts
    assert "cookie" not in texts.lower()


@pytest.mark.parametrize("question, expected", questions())
def test_questions_find_their_document_in_the_top_3(corpus_kb, question, expected):
    result = Searcher(corpus_kb).search(question, k=10)
    top_docs = list(dict.fromkeys(h.source for h in result.hits))[:3]
    assert str((CORPUS / expected).resolve()) in top_docs, (question, top_docs)
