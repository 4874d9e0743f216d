"""Real-world formats (issue 20): slide decks, workbooks and CSV, email with attachments,
OpenDocument, RTF and EPUB; the files that used to fail (copy-protected PDFs, UTF-32 text, a Word
table python-docx cannot walk); titles and dates from content. Every file is made here, by the
libraries that write these formats (tests/support/formats.py, tests/support/ole.py)."""

from __future__ import annotations

import codecs
import io
import json
import subprocess
import sys

import pytest

from conftest import ROOT, make_pdf
from ingest import detect, load
from ingest.detect import SUPPORTED_NAMES
from kb.errors import LoadError
from support.formats import (docx_python_docx_cannot_read, make_eml, make_epub, make_odf, make_odt_with_odfpy,
                             make_pptx, make_rtf, make_xlsx, mime_bomb, owner_password_pdf, zip_bomb)
from support.ole import make_msg

THANKS = "Partners learned that volunteers stay when they are thanked."


def headings(doc) -> list[tuple[str, int, int | None]]:
    return [(b.text, b.level, b.page) for b in doc.blocks if b.kind == "heading"]


def text(doc) -> str:
    return "\n".join(b.text for b in doc.blocks)


# slide decks ------------------------------------------------------------------------------------

DECK = [("Listening sessions", ["Forty volunteers trained", "Groups of six met in libraries"], "Thank the Leeds librarians"),
        ("What we learned", ["Trust grows when residents chair meetings"], "")]


def test_pptx_a_page_per_slide_its_title_a_heading_with_tables_and_notes():
    doc = load(make_pptx(DECK, table=[["Site", "Sessions"], ["Leeds", "24"]]), "deck.pptx")
    assert headings(doc) == [("Listening sessions", 1, 1), ("What we learned", 1, 2)]
    assert [(b.text, b.page) for b in doc.blocks if b.kind == "para"] == [
        ("Forty volunteers trained\nGroups of six met in libraries", 1),
        ("Speaker notes: Thank the Leeds librarians", 1),
        ("Trust grows when residents chair meetings", 2), ("Site | Sessions", 2), ("Leeds | 24", 2)]
    assert doc.title == "Listening sessions"  # no title in its properties: the first slide's
    assert doc.mime.endswith("presentationml.presentation")
    assert load(make_pptx(DECK, title="Leeds learning event"), "deck.pptx").title == "Leeds learning event"


def test_a_deck_with_more_slides_than_the_page_limit_is_refused():
    with pytest.raises(LoadError, match="presentation has 2 slides, more than the limit of 1"):
        load(make_pptx(DECK), "deck.pptx", max_pdf_pages=1)


# spreadsheets -----------------------------------------------------------------------------------

def test_xlsx_a_section_per_sheet_rows_as_column_value_lines():
    from datetime import datetime

    data = make_xlsx({"Outcomes": [["Site", "Volunteers", "Started"], ["Leeds", 40, datetime(2022, 1, 5)],
                                   [None, None, None], ["Newham", 12.0, None]],
                      "Empty": [], "Notes": [["Quarterly figures from the partnerships"]]})
    doc = load(data, "outcomes.xlsx")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Outcomes"),
        ("para", "Row 2:\nSite: Leeds\nVolunteers: 40\nStarted: 2022-01-05"),
        ("para", "Row 4:\nSite: Newham\nVolunteers: 12"),
        ("heading", "Notes"), ("para", "Quarterly figures from the partnerships")]
    assert doc.title == "Outcomes" and doc.warnings == []


def test_a_workbook_of_placeholder_sheets_takes_no_made_up_title():
    doc = load(make_xlsx({"Sheet1": [["Site", "Count"], ["Leeds", 4]]}), "figures.xlsx")
    assert doc.title is None  # not "Sheet1", nor "Row 2:"; the file name is shown instead
    assert load(make_xlsx({"Sheet1": [["x", 1]]}, title="Outcomes 2023"), "f.xlsx").title == "Outcomes 2023"


@pytest.mark.parametrize("data, name", [
    (b"Site,Volunteers,Note\r\nLeeds,40,\"Met weekly, in libraries\"\r\nNewham,12,\r\n", "figures.csv"),
    ("Site;Volunteers;Note\nLeeds;40;Met weekly, in libraries\nNewham;12;\n".encode("cp1252"), "figures.csv"),
    ("Site\tVolunteers\tNote\nLeeds\t40\tMet weekly, in libraries\nNewham\t12\t\n".encode("utf-16"), "figures.tsv"),
], ids=["comma-crlf-quoted", "semicolon-cp1252", "tab-utf16"])
def test_csv_dialect_and_encoding_are_sniffed(data, name):
    doc = load(data, name)
    assert [b.text for b in doc.blocks] == ["Row 2:\nSite: Leeds\nVolunteers: 40\nNote: Met weekly, in libraries",
                                            "Row 3:\nSite: Newham\nVolunteers: 12"]
    assert doc.title is None and doc.mime == "text/csv"


def test_a_csv_without_a_header_row_names_its_columns_by_number():
    doc = load(b"Leeds,40\nNewham,12\n", "figures.csv")
    assert doc.blocks[0].text == "Row 1:\nColumn 1: Leeds\nColumn 2: 40"


def test_a_million_row_csv_is_kept_to_its_first_20000_rows_with_a_warning():
    data = ("Site,Count,Note\n" + "".join(f"Leeds,{n},{THANKS}\n" for n in range(1_000_000))).encode()
    doc = load(data, "huge.csv")
    assert len(doc.blocks) == 19_999 and doc.blocks[-1].text.startswith("Row 20000:")
    assert doc.warnings == ["only the first 20,000 rows were read"]


# email ------------------------------------------------------------------------------------------

def test_eml_subject_date_sender_body_and_its_attachments():
    report = make_pdf([[("h1", "Allotments"), ("p", THANKS)]], title="Allotment report")
    data = make_eml("Coventry learning event", "Dear partners,\n\nThe choir for people with dementia starts in May.",
                    attachments=[("report.pdf", report, "application/pdf"), ("logo.gif", b"GIF89a" + bytes(40), "image/gif"),
                                 ("../../etc/passwd.txt", b"a name with folders", "text/plain")])
    doc = load(data, "update.eml")
    assert (doc.title, doc.published, doc.mime) == ("Coventry learning event", "2023-03-14", "message/rfc822")
    assert [b.text for b in doc.blocks] == [
        "From: Asha Patel <asha@example.org>\nDate: Tue, 14 Mar 2023 09:30:00 +0000", "Dear partners,",
        "The choir for people with dementia starts in May.", "Attachments: logo.gif, passwd.txt, report.pdf"]
    assert [(a.name, a.data) for a in doc.attachments] == [("report.pdf", report), ("passwd.txt", b"a name with folders")]
    assert doc.warnings == ["attachment logo.gif not read: unsupported file: a GIF image"]


def test_an_html_only_email_is_cleaned_as_a_web_page_and_an_attached_message_travels_whole():
    inner = make_eml("Minutes", "The steering group met.")
    data = make_eml("Fwd: minutes", "", html="<html><body><script>SCRIPT-TEXT</script><h2>Update</h2>"
                    "<p>The garden project grew.</p></body></html>", attachments=[("minutes.eml", inner, "message/rfc822")])
    doc = load(data, "fwd.eml")
    assert [(b.kind, b.text) for b in doc.blocks[1:3]] == [("heading", "Update"), ("para", "The garden project grew.")]
    assert "SCRIPT-TEXT" not in text(doc)
    assert [a.name for a in doc.attachments] == ["minutes.eml"]
    assert load(doc.attachments[0].data, "minutes.eml").title == "Minutes"


def test_an_attachment_sent_without_a_name_is_named_by_its_type():
    raw = (b'From: a@example.org\nSubject: notes\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="x"\n\n'
           b"--x\nContent-Type: text/plain\n\nSee attached.\n--x\nContent-Type: text/csv\nContent-Disposition: attachment"
           b"\n\nSite,Count\nLeeds,4\n--x\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
           b'filename="notes.txt"\n\nTrust grew.\n--x--\n')
    assert [(a.name, a.data) for a in load(raw, "m.eml").attachments] == [
        ("attachment-1.csv", b"Site,Count\nLeeds,4"), ("notes.txt", b"Trust grew.")]


def test_a_message_without_its_extension_is_still_read_as_email():
    assert detect(make_eml("Update", "Words."), "update") == "eml"
    assert detect(b"Subject: notes\nFrom me\n\nplain words", "notes.txt") == "text"


def test_msg_subject_date_sender_body_and_attachments():
    data = make_msg("Newham steering group", "The group agreed to open a baby bank.\r\n",
                    attachments=[("actions.txt", b"Ask the council for a room."), ("photo.gif", b"GIF89a" + bytes(30))])
    doc = load(data, "minutes.msg")
    assert (doc.title, doc.published, doc.mime) == ("Newham steering group", "2023-03-14", "application/vnd.ms-outlook")
    assert [b.text for b in doc.blocks] == ["From: Asha Patel <asha@example.org>\nDate: 14 March 2023 09:30",
                                            "The group agreed to open a baby bank.", "Attachments: actions.txt, photo.gif"]
    assert [(a.name, a.data) for a in doc.attachments] == [("actions.txt", b"Ask the council for a room.")]
    assert doc.warnings == ["attachment photo.gif not read: unsupported file: a GIF image"]


@pytest.mark.parametrize("data, reason", [
    (mime_bomb(parts=5_000), "MIME bomb: 5,001 parts, more than the limit of 1,000: refused"),
    (mime_bomb(depth=200), "MIME bomb: parts nested more than 20 deep: refused"),
], ids=["parts", "nesting"])
def test_mime_bombs_are_refused_by_their_bound(data, reason):
    with pytest.raises(LoadError, match=reason):
        load(data, "bomb.eml")


# OpenDocument -----------------------------------------------------------------------------------

ODT = ('<text:h text:outline-level="1">Plymouth</text:h><text:p>Partners set up a<text:s/>repair cafe.</text:p>'
       '<text:section><text:h text:outline-level="2">Volunteers</text:h><text:list><text:list-item>'
       '<text:p>Bicycles fixed</text:p></text:list-item></text:list></text:section>'
       '<table:table><table:table-row><table:table-cell><text:p>Site</text:p></table:table-cell>'
       '<table:table-cell><text:p>Repairs</text:p></table:table-cell></table:table-row></table:table>')


def test_odt_headings_paragraphs_lists_and_tables_in_order():
    doc = load(make_odf("text", ODT, title="Plymouth notes"), "notes.odt")
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Plymouth"), ("para", 0, "Partners set up a repair cafe."), ("heading", 2, "Volunteers"),
        ("para", 0, "Bicycles fixed"), ("para", 0, "Site | Repairs")]
    assert doc.title == "Plymouth notes"


def test_an_odt_written_by_odfpy():
    doc = load(make_odt_with_odfpy([("h1", "Context"), ("p", THANKS), ("h2", "Next")]), "notes.odt")
    assert headings(doc) == [("Context", 1, None), ("Next", 2, None)] and doc.title == "Context"


def test_ods_sheets_as_sections_and_a_million_repeated_rows_cost_nothing():
    cell = '<table:table-cell><text:p>{}</text:p></table:table-cell>'
    rows = ("<table:table-row>" + cell.format("Site") + cell.format("Count") + "</table:table-row>"
            "<table:table-row>" + cell.format("Leeds") + cell.format("40")
            + '<table:table-cell table:number-columns-repeated="16000"/></table:table-row>'
            '<table:table-row table:number-rows-repeated="1048570"><table:table-cell '
            'table:number-columns-repeated="1024"/></table:table-row>'
            '<table:table-row table:number-rows-repeated="1000000">' + cell.format("again") + "</table:table-row>")
    doc = load(make_odf("spreadsheet", f'<table:table table:name="Outcomes">{rows}</table:table>'), "o.ods")
    assert [b.text for b in doc.blocks[:3]] == ["Outcomes", "Row 2:\nSite: Leeds\nCount: 40", "Row 1048573:\nSite: again"]
    assert len(doc.blocks) == 1 + 1 + 19_998 and doc.warnings == ["only the first 20,000 rows were read"]


def test_odp_slides_as_pages_with_titles_and_notes():
    frame = '<draw:frame presentation:class="{}"><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame>'
    body = ('<draw:page>' + frame.format("title", "Leeds event") + frame.format("outline", "Forty volunteers")
            + '<presentation:notes>' + frame.format("notes", "Thank the librarians") + '</presentation:notes></draw:page>'
            '<draw:page>' + frame.format("outline", "Trust grew") + '</draw:page>')
    doc = load(make_odf("presentation", body), "deck.odp")
    assert [(b.kind, b.text, b.page) for b in doc.blocks] == [
        ("heading", "Leeds event", 1), ("para", "Forty volunteers", 1), ("para", "Speaker notes: Thank the librarians", 1),
        ("para", "Trust grew", 2)]


# RTF and EPUB -----------------------------------------------------------------------------------

def test_rtf_paragraphs_title_and_creation_date():
    doc = load(make_rtf("Gloucester story", ["Lunch club", "Caf\u00e9 \u201cFriday\u201d lunches for neighbours."]), "s.rtf")
    assert [b.text for b in doc.blocks] == ["Lunch club", "Caf\u00e9 \u201cFriday\u201d lunches for neighbours."]
    assert (doc.title, doc.published, doc.mime) == ("Gloucester story", "2022-11-03", "application/rtf")


def test_epub_chapters_as_headings_in_spine_order():
    doc = load(make_epub([("Beginnings", "The partnership began in 2019."), ("Growing", THANKS)]), "book.epub")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Beginnings"), ("para", "The partnership began in 2019."), ("heading", "Growing"), ("para", THANKS)]
    assert (doc.title, doc.published) == ("Learning together", "2021-06-01")


# zip bombs and what stays unsupported -----------------------------------------------------------

@pytest.mark.parametrize("name, parts, what", [
    ("deck.pptx", {"ppt/presentation.xml": b"<p/>"}, "PowerPoint presentation"),
    ("outcomes.xlsx", {"xl/workbook.xml": b"<w/>"}, "Excel workbook"),
    ("notes.odt", {"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<c/>"}, "OpenDocument file"),
    ("book.epub", {"mimetype": b"application/epub+zip", "META-INF/container.xml": b"<c/>"}, "EPUB book"),
])
def test_zip_bombs_of_every_zip_based_format_are_refused_before_parsing(name, parts, what):
    big = list(parts)[-1]
    with pytest.raises(LoadError, match=f"{what} would inflate to 300 MB: refused as a zip bomb"):
        load(zip_bomb(parts, 300, big), name)


def test_an_archive_of_too_many_parts_is_refused():
    parts = {"xl/workbook.xml": b"<w/>", **{f"xl/worksheets/s{n}.xml": b"" for n in range(20_001)}}
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        for part, data in parts.items():
            archive.writestr(part, data)
    with pytest.raises(LoadError, match="Excel workbook holds 20,002 parts, more than the limit of 20,000"):
        load(buffer.getvalue(), "many.xlsx")


@pytest.mark.parametrize("name, data, reason", [
    ("slides.key", zip_bomb({"Index/Document.iwa": b"x"}, 0), r"unsupported file type: Apple Keynote \(\.key\)"),
    ("slides.key", b"not even a zip", r"unsupported file type: Apple Keynote \(\.key\)"),
    ("drawing.odg", make_odf("text", "", mimetype="application/vnd.oasis.opendocument.graphics"),
     r"unsupported file: an OpenDocument drawing \(\.odg\)"),
    ("deck.pptx", b"plain words", r"named \.pptx but is not a PowerPoint presentation"),
    ("minutes.msg", b"plain words", r"named \.msg but is not an Outlook message"),
], ids=["keynote-zip", "keynote-named", "odg", "fake-pptx", "fake-msg"])
def test_what_stays_unsupported_is_named(name, data, reason):
    with pytest.raises(LoadError, match=reason):
        load(data, name)


def test_the_supported_names_cover_every_new_format():
    for name in ("PowerPoint", "Excel", "CSV", ".eml", ".msg", "OpenDocument", "RTF", "EPUB"):
        assert name in SUPPORTED_NAMES


# the failures that were -----------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_a_pdf_with_an_owner_password_only_is_read(algorithm):
    assert load(owner_password_pdf(make_pdf([[("p", THANKS)]]), algorithm), "report.pdf").blocks[0].text == THANKS


def test_a_missing_library_is_kbs_own_error_never_a_corrupt_file(tmp_path):
    """The AES decryption pypdf needs cryptography for, in a Python that cannot import it."""
    (tmp_path / "locked.pdf").write_bytes(owner_password_pdf(make_pdf([[("p", THANKS)]])))
    script = ("import sys; sys.modules['cryptography'] = None\n"
              "from ingest import load\nfrom kb.errors import LoadError\n"
              f"try:\n    load(open({str(tmp_path / 'locked.pdf')!r}, 'rb').read(), 'locked.pdf')\n"
              "except LoadError as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingDependency kb cannot read this file here: a library it needs is missing (PDF:")
    assert "cryptography" in out and "corrupt" not in out and "make install" in out


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be"])
def test_utf32_and_utf16_text_with_and_without_a_bom(encoding):
    words = "Caf\u00e9 \u00a3450,000 \u2019quoted\u2019 \U0001F642"
    assert load(words.encode(encoding), "note.txt").blocks[0].text == words
    if encoding == "utf-32":
        assert (words.encode(encoding)[:4]) in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def test_a_word_document_python_docx_cannot_walk_is_read_from_its_xml():
    data = docx_python_docx_cannot_read([("h1", "Findings"), ("p", THANKS)], [["Site and count", "x"], ["Leeds", "40"]])
    doc = load(data, "report.docx")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Findings"), ("para", THANKS), ("para", "Site and count"), ("para", "Leeds | 40")]
    assert doc.warnings == ["read from the document's XML, without python-docx (no `tc` element at grid_offset=1)"]


# titles and dates from content ----------------------------------------------------------------------

def large_type_pdf(title: str | None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 20)
    pdf.multi_cell(0, 10, "Coventry learning report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, THANKS * 3, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@pytest.mark.parametrize("info, title", [
    (None, "Coventry learning report"),  # no title in its properties: its largest type on page 1
    ("Microsoft Word - draft3.docx", "Coventry learning report"),  # a placeholder counts as none
    ("Coventry: a year of learning", "Coventry: a year of learning"),  # a real one wins
])
def test_a_pdf_title_from_its_first_large_type_line(info, title):
    assert load(large_type_pdf(info), "x.pdf").title == title


# through the ingest: attachments as documents of their own ------------------------------------------

def test_an_emails_attachments_become_documents_linked_to_it(fake_kb, tmp_path):
    from ingest.pipeline import ingest_paths
    from kb.models import DocMeta

    report = make_pdf([[("h1", "Allotments"), ("p", THANKS)]], title="Allotment report")
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "update.eml").write_bytes(make_eml("Coventry update", "The choir starts in May.", attachments=[
        ("report.pdf", report, "application/pdf"), ("logo.gif", b"GIF89a" + bytes(40), "image/gif"),
        ("minutes.eml", make_eml("Minutes", "The group met.", attachments=[("actions.txt", b"Book a room.", "text/plain")]),
         "message/rfc822")]))
    (folder / "update.eml.meta.json").write_text(json.dumps({"site": "Coventry", "visibility": "partners"}))
    report_ = ingest_paths(fake_kb, [folder], DocMeta(tags=["email"]))
    lines = [(i.status, i.name.removeprefix(str(folder) + "/"), i.reason) for i in report_.items]
    assert lines == [("added", "update.eml", ""), ("added", "update.eml#report.pdf", ""),
                     ("added", "update.eml#minutes.eml", ""), ("added", "update.eml#minutes.eml#actions.txt", "")]
    docs = {d.source.removeprefix(str(folder.resolve()) + "/"): d for d in fake_kb.store.documents()}
    assert set(docs) == {"update.eml", "update.eml#report.pdf", "update.eml#minutes.eml",
                         "update.eml#minutes.eml#actions.txt"}
    attached = docs["update.eml#report.pdf"]
    assert (attached.title, attached.original_name, attached.mime) == ("Allotment report", "report.pdf", "application/pdf")
    for doc in docs.values():  # who sent it and who may see it go with every attachment
        assert (doc.site, doc.visibility, doc.tags) == ("Coventry", "partners", ["email"])
    assert fake_kb.files.read(attached.stored_path) == report
    assert docs["update.eml"].published == "2023-03-14" and attached.published != "2023-03-14"

    again = ingest_paths(fake_kb, [folder], prune=True)  # unchanged: its attachments are not pruned
    assert [i.status for i in again.items] == ["unchanged"]
    (folder / "update.eml").unlink()
    gone = ingest_paths(fake_kb, [folder], prune=True)
    assert sorted(i.status for i in gone.items) == ["pruned"] * 4 and fake_kb.store.documents() == []


E2E_FILES = {
    "deck.pptx": lambda: make_pptx([("Listening sessions", ["Forty volunteers ran listening sessions in libraries"], ""),
                                    ("What we learned about trust", ["Trust grew when residents chaired the meetings"],
                                     "Residents asked for evening sessions")]),
    "outcomes.xlsx": lambda: make_xlsx({"Outcomes 2023": [["Site", "Outcome"], ["Leeds", "Walking football for men over sixty"],
                                                          ["Newham", "A cooking club for refugee families"]]}),
    "survey.csv": lambda: b"Site,Answer\nGloucester,Free bus passes to the wellbeing hub helped most\n",
    "update.eml": lambda: make_eml("Coventry learning event", "The event agreed to fund a community choir for people "
                                   "with dementia.", attachments=[("allotments.pdf", make_pdf([
                                       [("h1", "Summary"), ("p", "Our partnership grew in its second year.")],
                                       [("h1", "Allotments"), ("p", "Growing vegetables on the allotment eased "
                                                                    "loneliness among older men in Bradford.")]]),
                                       "application/pdf")]),
    "minutes.msg": lambda: make_msg("Newham steering group", "The steering group agreed to open a baby bank in "
                                    "Stratford library.\r\n"),
    "notes.odt": lambda: make_odf("text", "<text:h text:outline-level=\"1\">Repairs</text:h><text:p>Plymouth volunteers "
                                  "run a repair cafe that fixes bicycles and toasters.</text:p>"),
    "deck.odp": lambda: make_odf("presentation", "<draw:page><draw:frame><draw:text-box><text:p>Opening</text:p>"
                                 "</draw:text-box></draw:frame></draw:page><draw:page><draw:frame><draw:text-box>"
                                 "<text:p>Swimming sessions gave unpaid carers an hour for themselves</text:p>"
                                 "</draw:text-box></draw:frame></draw:page>"),
    "story.rtf": lambda: make_rtf("Gloucester story", ["A mosque opened its kitchen for a weekly lunch club for "
                                                       "isolated neighbours."]),
    "book.epub": lambda: make_epub([("Beginnings", "The Wakefield partnership began with a pop-up shop."),
                                    ("Coaches", "Football coaches in Wakefield trained as mental health first aiders.")]),
    "slides.key": lambda: b"PK\x03\x04 an Apple Keynote file",
}
# a question about each file's content -> the file (or attachment) found first, and the page or slide cited
E2E_QUERIES = [
    ("residents chairing meetings built trust", "deck.pptx", 2),
    ("walking football for older men", "outcomes.xlsx", None),
    ("bus passes to the wellbeing hub", "survey.csv", None),
    ("a choir for people with dementia", "update.eml", None),
    ("allotment gardening and loneliness in older men", "update.eml#allotments.pdf", 2),
    ("baby bank in the library", "minutes.msg", None),
    ("repair cafe fixing bicycles", "notes.odt", None),
    ("time off for unpaid carers swimming", "deck.odp", 2),
    ("mosque kitchen lunch club", "story.rtf", None),
    ("football coaches trained in mental health first aid", "book.epub", None),
]


@pytest.mark.model
def test_kb_ingest_reads_a_folder_of_every_format_and_finds_each_with_its_page(tmp_path, capsys, model):
    from cli import main

    folder = tmp_path / "files"
    folder.mkdir()
    for name, make in E2E_FILES.items():
        (folder / name).write_bytes(make())
    data = tmp_path / "data"
    code = main(["--data", str(data), "ingest", str(folder)])
    out, err = capsys.readouterr()
    lines = sorted(line.split()[0] + " " + line.split()[1].removeprefix(str(folder) + "/") for line in err.splitlines()
                   if not line.startswith("skipped"))  # slides.key: its line is tests/test_hostile.py's
    assert code == 0, err
    assert lines == sorted([f"added {n}" for n in E2E_FILES if n != "slides.key"] + ["added update.eml#allotments.pdf"])
    for query, source, page in E2E_QUERIES:
        assert main(["--data", str(data), "search", "--json", "-k", "1", query]) == 0
        hit = json.loads(capsys.readouterr().out)["hits"][0]
        assert (hit["source"].removeprefix(str(folder) + "/"), hit["page"]) == (source, page), query
