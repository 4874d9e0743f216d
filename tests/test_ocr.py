"""OCR: scanned PDF pages and image files read by the real Tesseract, their limits, and the page found by search.

The scans are made here: a typed page rendered at 200 dpi, turned 1.5 degrees, with noise, dust and
blur (conftest.scan_image), saved as a PDF page with no text layer and as PNG, JPEG and TIFF.
"""

from __future__ import annotations

import difflib
import io
import os
import time

import pytest

from conftest import SCAN_TEXT, FakeEmbedder, image_bomb, image_file, make_pdf, scan_image
from ingest import load
from ingest.isolate import IsolatedLoader
from ingest.ocr import NEEDS_TESSERACT, OcrOptions
from ingest.pipeline import ingest_paths
from kb.collection import KnowledgeBase
from kb.errors import ConfigError, LoadError
from kb.settings import Settings

OTHER_TEXT = ("Minutes of the steering group. Members reviewed the evaluation plan and agreed that each site "
              "would collect stories from residents as well as numbers.")


def word_accuracy(reference: str, read: str) -> float:
    """1 - word error rate: words substituted, dropped or added, over the words rendered."""
    ref, got = reference.split(), read.split()
    errors = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2
                 in difflib.SequenceMatcher(a=ref, b=got, autojunk=False).get_opcodes() if op != "equal")
    return 1 - errors / len(ref)


def scanned_pdf_pages(*texts: str) -> bytes:
    """A PDF of scanned pages (no text layer), one per text."""
    images = [scan_image(text, seed=n) for n, text in enumerate(texts)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=200, title="", save_all=True, append_images=images[1:])
    return buffer.getvalue()


@pytest.fixture(scope="module")
def page():
    return scan_image()


@pytest.mark.parametrize("kind", ["pdf", "png", "jpeg", "tiff"])
def test_a_scanned_page_is_read_with_95_percent_of_its_words_right(page, kind):
    doc = load(image_file(page, kind), f"scan.{kind}")
    read = " ".join(block.text for block in doc.blocks)
    accuracy = word_accuracy(SCAN_TEXT, read)
    print(f"{kind}: word accuracy {accuracy:.3f}")
    assert accuracy >= 0.95, read
    assert doc.warnings and doc.warnings[0].startswith("text read from a scan")
    assert {block.page for block in doc.blocks} == ({1} if kind == "pdf" else {None})
    assert doc.mime == {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff"}[kind]


def test_only_pages_without_a_text_layer_are_read_by_ocr(monkeypatch):
    """A text page (with a picture on it too) is read from its text layer; a scanned page beside it by OCR."""
    import pytesseract
    from pypdf import PdfReader, PdfWriter

    calls = []
    real = pytesseract.image_to_data
    monkeypatch.setattr(pytesseract, "image_to_data", lambda image, **kw: calls.append(image.size) or real(image, **kw))
    text_page = make_pdf([[("h1", "Cover"), ("p", OTHER_TEXT)]])
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_page)))
    writer.append(PdfReader(io.BytesIO(scanned_pdf_pages(SCAN_TEXT))))
    buffer = io.BytesIO()
    writer.write(buffer)
    doc = load(buffer.getvalue(), "mixed.pdf")
    assert len(calls) == 1
    assert doc.warnings == ["text read from a scan (page 2) by OCR: a word may be misread, so check names and "
                            "figures against the original"]
    assert any("shared referral form" in b.text and b.page == 2 for b in doc.blocks)
    assert any(b.text == OTHER_TEXT and b.page == 1 for b in doc.blocks)


def test_a_text_layer_pdf_is_never_read_by_ocr(monkeypatch, tmp_path):
    """With a picture as large as a page on it, a PDF that has text is never OCR'd."""
    import pytesseract
    from fpdf import FPDF

    monkeypatch.setattr(pytesseract, "image_to_data", lambda *a, **kw: pytest.fail("OCR was called"))
    picture = tmp_path / "photo.png"
    scan_image("A photograph of the lunch club", dpi=100).save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), x=0, y=0, w=210)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, OTHER_TEXT)
    doc = load(bytes(pdf.output()), "report.pdf")
    assert doc.warnings == [] and doc.blocks[0].text == OTHER_TEXT


def test_with_ocr_off_scans_are_refused_naming_the_setting(page):
    off = OcrOptions(enabled=False)
    with pytest.raises(LoadError, match=r"no text found: scanned PDF without a text layer, and OCR is off \(KB_OCR=0\)"):
        load(image_file(page, "pdf"), "scan.pdf", ocr=off)
    with pytest.raises(LoadError, match=r"its text is read only by OCR, which is off \(KB_OCR=0\)"):
        load(image_file(page, "png"), "scan.png", ocr=off)


def test_with_ocr_off_scanned_pages_beside_text_are_left_out_and_said_so():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([[("p", OTHER_TEXT)]]))))
    writer.append(PdfReader(io.BytesIO(scanned_pdf_pages(SCAN_TEXT))))
    buffer = io.BytesIO()
    writer.write(buffer)
    doc = load(buffer.getvalue(), "mixed.pdf", ocr=OcrOptions(enabled=False))
    assert doc.warnings == ["1 scanned page without a text layer not read: OCR is off (KB_OCR=0)"]
    assert [b.page for b in doc.blocks] == [1]


@pytest.mark.parametrize("kind", ["png", "pdf"])
def test_a_20000_pixel_square_image_is_refused_by_its_pixel_limit_before_decoding(kind):
    from test_hostile import image_bomb_pdf

    data = image_bomb() if kind == "png" else image_bomb_pdf()
    started = time.monotonic()
    with pytest.raises(LoadError, match=r"refused: 20,000 x 20,000 pixels \(400 million\), more than the limit "
                                        r"of 100 million \(KB_OCR_MAX_PIXELS\)"):
        load(data, f"bomb.{kind}")
    assert time.monotonic() - started < 2  # from the header: no 400 million pixels decoded


def test_a_missing_tesseract_is_a_reason_not_a_traceback(page, monkeypatch, tmp_path):
    """In the worker, as an ingest meets it: Tesseract not on the PATH."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with IsolatedLoader() as loader:
        for kind in ("png", "pdf"):
            with pytest.raises(LoadError) as refused:
                loader.load(image_file(page, kind), f"scan.{kind}")
            assert str(refused.value) == NEEDS_TESSERACT == "OCR needs Tesseract: apt-get install tesseract-ocr"


def test_languages_are_checked_against_tesseract_before_an_ingest_reads_a_file(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text(OTHER_TEXT)
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", model="fake", ocr_langs="eng+xyz"), FakeEmbedder())
    with pytest.raises(ConfigError, match=r"KB_OCR_LANGS=eng\+xyz: Tesseract here has no xyz \(it has eng\): "
                                          r"apt-get install tesseract-ocr-xyz"):
        ingest_paths(kb, [tmp_path / "docs"])
    assert kb.store.count() == 0
    kb.close()
    with pytest.raises(ConfigError, match="Tesseract language codes joined by \\+"):
        Settings.from_env({"KB_OCR_LANGS": "eng; rm -rf /"})


def test_a_page_that_takes_too_long_is_stopped_at_its_own_limit(page):
    with pytest.raises(LoadError, match=r"OCR of the image took longer than the limit of 0.05 s \(KB_OCR_PAGE_SECONDS\)"):
        load(image_file(page, "png"), "slow.png", ocr=OcrOptions(page_seconds=0.05))


def test_a_page_that_cannot_be_read_is_left_out_and_said_so(monkeypatch):
    """Page 2 of a scanned report stops at its time limit: pages 1 and 3 are kept, the note names page 2."""
    import pytesseract

    calls, real = [], pytesseract.image_to_data

    def slow_second_page(image, **kw):
        calls.append(image.size)
        if len(calls) == 2:
            raise RuntimeError("Tesseract process timeout")
        return real(image, **kw)

    monkeypatch.setattr(pytesseract, "image_to_data", slow_second_page)
    doc = load(scanned_pdf_pages(SCAN_TEXT, "A page Tesseract never finished.", OTHER_TEXT), "report.pdf")
    assert {b.page for b in doc.blocks} == {1, 3}
    assert doc.warnings == [
        "text read from a scan (pages 1, 3) by OCR: a word may be misread, so check names and figures against the original",
        "OCR of page 2 took longer than the limit of 60 s (KB_OCR_PAGE_SECONDS): left out"]


def test_pages_to_read_are_bounded():
    data = scanned_pdf_pages("First page.", "Second page.", "Third page.")
    with pytest.raises(LoadError, match=r"3 pages to read by OCR, more than the limit of 2 \(KB_OCR_MAX_PAGES\)"):
        load(data, "long.pdf", ocr=OcrOptions(max_pages=2))


def test_each_page_read_moves_the_files_time_limit_on():
    """Three scanned pages take longer than the file's own limit of 1 s, and are read: the worker
    announces each page, which gets the page limit of its own."""
    texts = [SCAN_TEXT, OTHER_TEXT, "The lunch club meets on Thursdays at the community centre."]
    with IsolatedLoader(max_seconds=1.0) as loader:
        started = time.monotonic()
        doc = loader.load(scanned_pdf_pages(*texts), "three.pdf")
        took = time.monotonic() - started
    assert took > 1.0 and {b.page for b in doc.blocks} == {1, 2, 3}, took
    assert doc.warnings[0].startswith("text read from a scan (pages 1-3) by OCR")


@pytest.mark.model
def test_a_scan_is_found_by_search_with_its_page_and_the_page_says_it_was_read_from_a_scan(real_kb, tmp_path, page):
    from kb.search import Searcher
    from web import create_app

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "minutes.md").write_text(f"# Steering group minutes\n\n{OTHER_TEXT}\n")
    (folder / "signed-report.pdf").write_bytes(scanned_pdf_pages(OTHER_TEXT, SCAN_TEXT))
    (folder / "handout.jpg").write_bytes(image_file(scan_image(
        "Lunch club handout\nThe lunch club meets every Thursday at noon in the community centre on Mill Lane. "
        "Transport is free for anyone over seventy who cannot walk there.", seed=7), "jpeg"))
    report = ingest_paths(real_kb, [folder])
    assert [(os.path.basename(i.name), i.status) for i in report.items] == [
        ("handout.jpg", "added"), ("minutes.md", "added"), ("signed-report.pdf", "added")]
    searcher = Searcher(real_kb)
    hit = searcher.search("a shared referral form so nobody had to tell their story three times", k=3).hits[0]
    assert (real_kb.store.get(hit.doc_id).original_name, hit.page) == ("signed-report.pdf", 2), hit
    hit = searcher.search("free transport to the lunch club for people over seventy", k=3).hits[0]
    assert hit.title == "Lunch club handout" and hit.page is None

    doc = real_kb.store.get(hit.doc_id)
    assert doc.mime == "image/jpeg" and doc.warnings[0].startswith("text read from a scan by OCR")
    app = create_app(real_kb.settings, {"TESTING": True}, kb=real_kb)
    try:
        pdf = next(d for d in real_kb.store.documents() if d.original_name == "signed-report.pdf")
        html = app.test_client().get(f"/doc/{pdf.id}").get_data(as_text=True)
        assert "text read from a scan (pages 1-2) by OCR" in html
        assert app.test_client().get(f"/api/documents/{pdf.id}").get_json()["warnings"] == pdf.warnings
    finally:
        app.extensions["worker"].stop()
