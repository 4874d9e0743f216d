"""Each loader on files the tests generate, good and bad; content decides the type, not the name."""

from __future__ import annotations

import codecs
import io
import zipfile

import pytest

from conftest import encrypted_pdf, make_docx, make_pdf, scanned_pdf
from ingest import detect, load
from kb.errors import LoadError
from support.ole import make_ole

REPORT_PAGES = [
    [("h1", "Context"), ("p", "Plymouth partners met every week in community venues."),
     ("h2", "What we did"), ("p", "We trained forty volunteers to run listening sessions.")],
    [("h2", "What we learned"), ("p", "Trust grew when small groups led the conversations.")],
]

PAGE = b"""<!doctype html><html><head><title>Site title | News</title>
<meta property="og:title" content="Six places picked for health partnerships">
<meta property="article:published_time" content="2021-01-14T08:00:00Z">
<script>var tracking = "SECRET-TRACKER";</script><style>.x{}</style></head>
<body><header><nav><a href="/">Home</a> <a href="/jobs">Jobs</a></nav></header>
<div class="cookie-banner">We use cookies. Accept all cookies?</div>
<main><article><h1>Six places picked</h1><p>Six areas will get up to <b>&pound;500,000</b>.</p>
<div class="share">Share on Twitter</div><h2>Who was chosen</h2><ul><li>Coventry</li><li>Newham</li></ul>
<p onclick="alert(1)">Well Newham leads in Newham.</p>
<div class="related"><h3>Related articles</h3><p>Unrelated story</p></div></article></main>
<aside class="sidebar"><h3>Jobs</h3><p>Senior Project Manager (Regeneration)</p></aside>
<footer>Copyright footer text</footer></body></html>"""


def test_pdf_pages_and_outline_headings():
    doc = load(make_pdf(REPORT_PAGES, title="Plymouth report"), "report.pdf")
    assert doc.title == "Plymouth report"
    headings = [(b.text, b.level, b.page) for b in doc.blocks if b.kind == "heading"]
    assert headings == [("Context", 1, 1), ("What we did", 2, 1), ("What we learned", 2, 2)]
    paras = [(b.text, b.page) for b in doc.blocks if b.kind == "para"]
    assert ("Trust grew when small groups led the conversations.", 2) in paras


def test_html_keeps_main_content_only():
    doc = load(PAGE, "page.html")
    text = " ".join(b.text for b in doc.blocks)
    assert doc.title == "Six places picked for health partnerships"
    assert doc.published == "2021-01-14"
    assert "£500,000" in text and "Well Newham leads in Newham." in text and "Coventry" in text
    for chrome in ("SECRET-TRACKER", "cookies", "Share on Twitter", "Related articles",
                   "Senior Project Manager", "Copyright footer", "Home"):
        assert chrome not in text
    assert [(b.text, b.level) for b in doc.blocks if b.kind == "heading"] == [
        ("Six places picked", 1), ("Who was chosen", 2)]


def test_markdown_headings_front_matter_and_inline_markup():
    md = b"---\ntitle: Overview\ndate: 2022-09-01\n---\n# Programme\n\nSee [the fund](http://x) for **details**.\n\nPhase 2\n-------\nUp to \xc2\xa3450,000.\n"
    doc = load(md, "o.md")
    assert doc.title == "Overview" and doc.published == "2022-09-01"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Programme"), ("para", "See the fund for details."), ("heading", "Phase 2"),
        ("para", "Up to £450,000.")]


@pytest.mark.parametrize("data", [
    "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019".encode("utf-8"),
    codecs.BOM_UTF8 + "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019".encode("utf-8"),
    "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019".encode("utf-16"),
    "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019".encode("cp1252"),
], ids=["utf8", "utf8-bom", "utf16-bom", "cp1252"])
def test_text_encodings(data):
    doc = load(data, "note.txt")
    assert doc.blocks[0].text == "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019"


def test_docx_heading_styles():
    data = make_docx([("h1", "Gloucestershire"), ("p", "Enabling active communities."),
                      ("h2", "Partners"), ("p", "Council and NHS.")], title="Area profile")
    doc = load(data, "profile.docx")
    assert doc.title == "Area profile"
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Gloucestershire"), ("para", 0, "Enabling active communities."),
        ("heading", 2, "Partners"), ("para", 0, "Council and NHS.")]


def test_a_pdf_named_txt_is_read_as_a_pdf():
    assert detect(make_pdf(REPORT_PAGES), "misnamed.txt") == "pdf"


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"<a>" + b"0" * (300 * 1024 * 1024) + b"</a>")
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, reason", [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"   \n\n  ", "empty file"),
    ("junk.txt", bytes(range(256)) * 40, "binary data"),
    ("corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", "corrupt PDF"),
    ("encrypted.pdf", None, "encrypted PDF"),
    ("scan.pdf", None, "no text found"),
    ("fake.pdf", b"just text", "not a PDF"),
    ("fake.docx", b"just text", "not a Word document"),
    ("archive.docx", None, "not a Word document"),
    ("bomb.docx", None, "zip bomb"),
    ("image.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG"),
    ("data.bin", b"a,b\n1,2\n", r"unsupported file type: \.bin"),
    ("slides.key", b"a,b\n1,2\n", r"unsupported file type: Apple Keynote \(\.key\)"),
    ("old.doc", b"\xd0\xcf\x11\xe0" + b"\x00" * 100, r"an old Word document \(\.doc\): save it as \.docx"),
    ("message.msg", make_ole(["__substg1.0_0037001F", "__properties_version1.0", "__nameid_version1.0/"]),
     "corrupt Outlook message"),  # its streams named, but empty: read as a message (tests/test_formats.py)
    ("message.doc", make_ole(["__substg1.0_0037001F", "__properties_version1.0"]), "corrupt Outlook message"),
    ("locked.xlsx", make_ole(["EncryptionInfo", "EncryptedPackage", "\x06DataSpaces/"]),
     r"unsupported file: a password-protected Excel workbook \(\.xlsx\)"),
    ("locked.docx", make_ole(["EncryptionInfo", "EncryptedPackage"], data_sectors=14_000),  # 7 MB: FAT past the header
     "encrypted Word document: it needs a password"),
    ("report.doc", make_ole(["WordDocument", "1Table"], data_sectors=8), r"an old Word document \(\.doc\)"),
    ("report", make_ole(["WordDocument", "1Table"]), r"an old Word document \(\.doc\)"),
    ("budget.xls", make_ole(["Workbook"]), r"an Excel workbook \(\.xls\)"),
    ("slides.ppt", make_ole(["PowerPoint Document", "Current User"]), r"a PowerPoint presentation \(\.ppt\)"),
    ("other.bin", make_ole(["Contents"]), "an OLE compound file"),
])
def test_bad_files_get_a_clear_reason(name, data, reason):
    if name == "encrypted.pdf":
        data = encrypted_pdf(make_pdf(REPORT_PAGES))
    elif name == "scan.pdf":
        data = scanned_pdf()
    elif name == "archive.docx":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("hello.txt", "hi")
        data = buffer.getvalue()
    elif name == "bomb.docx":
        data = _zip_bomb()
    with pytest.raises(LoadError, match=reason):
        load(data, name)


def test_pdf_page_limit():
    with pytest.raises(LoadError, match="more than the limit"):
        load(make_pdf(REPORT_PAGES * 3), "long.pdf", max_pdf_pages=4)


@pytest.mark.parametrize("paragraphs, title", [
    ([("p", "Coventry learning event notes"), ("p", "We met in March and talked about trust.")],
     "Coventry learning event notes"),  # the first line reads as a title
    ([("p", "We met in March and talked about trust."), ("p", "Then we had lunch.")], None),  # a sentence does not
    ([("p", "Notes"), ("h2", "What we learned"), ("p", "Trust grew.")], "What we learned"),  # a heading wins
])
def test_a_document_without_a_title_property_takes_one_from_its_content(paragraphs, title):
    """Issue 18: uploads without a title in their properties were titled by their file name."""
    doc = load(make_docx(paragraphs), "upload-3f2a.docx")
    assert doc.title == title
