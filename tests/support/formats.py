"""Files of the formats kb reads beyond PDF, Word, HTML and text, made here for the tests: slide
decks, workbooks, CSV, email, OpenDocument, RTF and EPUB, and the hostile variants of each."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone


def make_pptx(slides: list[tuple[str, list[str], str]], title: str | None = None,
              table: list[list[str]] | None = None) -> bytes:
    """A deck: per slide (title, bullet lines, speaker notes); `table` goes on the last slide."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    if title is not None:
        deck.core_properties.title = title
    for n, (heading, bullets, notes) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        frame = slide.placeholders[1].text_frame
        frame.text = bullets[0] if bullets else ""
        for line in bullets[1:]:
            frame.add_paragraph().text = line
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
        if table and n == len(slides) - 1:
            shape = slide.shapes.add_table(len(table), len(table[0]), Inches(1), Inches(5), Inches(6), Inches(1))
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    shape.table.cell(r, c).text = value
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def make_xlsx(sheets: dict[str, list[list]], title: str | None = None) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    if title:
        book.properties.title = title
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def make_eml(subject: str, body: str, sender: str = "Asha Patel <asha@example.org>",
             date: datetime = datetime(2023, 3, 14, 9, 30, tzinfo=timezone.utc), html: str | None = None,
             attachments: list[tuple[str, bytes, str]] = ()) -> bytes:
    """A message; `attachments` as (file name, bytes, MIME type)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "partners@example.org"
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    if body:
        message.set_content(body)
    if html:
        if body:
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
    for name, data, mime in attachments:
        main, sub = mime.split("/")
        if main == "message":
            from email import message_from_bytes, policy

            message.add_attachment(message_from_bytes(data, policy=policy.default), filename=name)
        else:
            message.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return bytes(message)


def mime_bomb(depth: int = 0, parts: int = 0) -> bytes:
    """A message of `parts` sibling parts, or parts nested `depth` deep, each with a line of text."""
    lines = ["From: a@example.org", "Subject: bomb", "MIME-Version: 1.0"]
    if parts:
        lines += ['Content-Type: multipart/mixed; boundary="b"', ""]
        for n in range(parts):
            lines += ["--b", "Content-Type: text/plain", "", f"part {n}"]
        lines += ["--b--", ""]
        return "\r\n".join(lines).encode()
    for level in range(depth):
        lines += [f'Content-Type: multipart/mixed; boundary="b{level}"', "", f"--b{level}"]
    lines += ["Content-Type: text/plain", "", "deep"]
    for level in reversed(range(depth)):
        lines += [f"--b{level}--"]
    return "\r\n".join(lines).encode()


ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
          'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
          'xmlns:dc="http://purl.org/dc/elements/1.1/" '
          'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"')
ODF_MIME = {"text": "application/vnd.oasis.opendocument.text",
            "spreadsheet": "application/vnd.oasis.opendocument.spreadsheet",
            "presentation": "application/vnd.oasis.opendocument.presentation"}


def make_odf(kind: str, body: str, title: str | None = None, mimetype: str | None = None) -> bytes:
    """An OpenDocument package as office suites write one: `mimetype` first and stored, then
    content.xml (`body` inside office:text, office:spreadsheet or office:presentation) and meta.xml."""
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS} office:version="1.3">'
               f"<office:body><office:{kind}>{body}</office:{kind}></office:body></office:document-content>")
    meta = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODF_NS} office:version="1.3">'
            f"<office:meta>{f'<dc:title>{title}</dc:title>' if title else ''}</office:meta></office:document-meta>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype or ODF_MIME[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
        archive.writestr("meta.xml", meta)
        archive.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest='
                         '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>')
    return buffer.getvalue()


def make_odt_with_odfpy(items: list[tuple[str, str]], title: str | None = None) -> bytes:
    """An .odt written by odfpy, a second writer beside the hand-built package."""
    from odf import dc, text
    from odf.opendocument import OpenDocumentText

    document = OpenDocumentText()
    if title:
        document.meta.addElement(dc.Title(text=title))
    for kind, value in items:
        if kind.startswith("h"):
            document.text.addElement(text.H(outlinelevel=int(kind[1]), text=value))
        else:
            document.text.addElement(text.P(text=value))
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def make_rtf(title: str, paragraphs: list[str]) -> bytes:
    """RTF as word processors write it: cp1252 escapes (\\'e9) and Unicode escapes (\\u8220?)."""
    def escape(text: str) -> str:
        out = []
        for ch in text:
            if ord(ch) < 128:
                out.append("\\" + ch if ch in "\\{}" else ch)
            else:
                try:
                    out.append("\\'%02x" % ch.encode("cp1252")[0])
                except UnicodeEncodeError:
                    out.append(f"\\u{ord(ch)}?")
        return "".join(out)

    body = "".join(f"\\pard {escape(p)}\\par\n" for p in paragraphs)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Arial;}}"
            f"{{\\info{{\\title {escape(title)}}}{{\\creatim\\yr2022\\mo11\\dy3}}}}\n{body}}}").encode("ascii")


def make_epub(chapters: list[tuple[str, str]], title: str = "Learning together") -> bytes:
    """An EPUB written by ebooklib: (chapter title, paragraph) per chapter, in spine order."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("kb-test-book")
    book.set_title(title)
    book.set_language("en")
    book.add_metadata("DC", "date", "2021-06-01")
    items = []
    for n, (heading, text) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=heading, file_name=f"chap_{n}.xhtml", lang="en")
        item.content = f"<html><body><h1>{heading}</h1><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def zip_bomb(parts: dict[str, bytes], inflated_mb: int = 300, big: str | None = None) -> bytes:
    """An archive holding `parts`, one of them (`big`, else the first) padded with spaces to
    `inflated_mb` MB: a few hundred KB on disk."""
    big = big or next(iter(parts))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            if name == big:
                with archive.open(name, "w", force_zip64=True) as out:
                    out.write(data)
                    chunk = b" " * (1024 * 1024)
                    for _ in range(inflated_mb):
                        out.write(chunk)
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def docx_python_docx_cannot_read(paragraphs: list[tuple[str, str]], rows: list[list[str]]) -> bytes:
    """A .docx that Word opens and python-docx does not: its table's second row merges a cell down
    from a first-row cell that spans both columns (`no tc element at grid_offset=1`, found in a
    real report). `paragraphs` as (kind, text) with kind "h1".."h6" or "p"; `rows` two cells a row."""
    import re

    import docx

    document = docx.Document()
    for kind, text in paragraphs:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        else:
            document.add_paragraph(text)
    table = document.add_table(rows=len(rows), cols=2)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                xml = data.decode()
                first_row = re.search(r"<w:tr>.*?</w:tr>", xml).group(0)
                cells = re.findall(r"<w:tc>.*?</w:tc>", first_row)
                spanning = cells[0].replace("<w:tcPr>", '<w:tcPr><w:gridSpan w:val="2"/>', 1)
                xml = xml.replace(first_row, first_row.replace(cells[0] + cells[1], spanning), 1)
                second = re.findall(r"<w:tr>.*?</w:tr>", xml)[1]
                merged = re.findall(r"<w:tc>.*?</w:tc>", second)[1]
                xml = xml.replace(merged, merged.replace("<w:tcPr>", '<w:tcPr><w:vMerge/>', 1), 1)
                data = xml.encode()
            archive.writestr(info, data)
    return out.getvalue()


def owner_password_pdf(data: bytes, algorithm: str = "AES-256") -> bytes:
    """A copy-protected PDF: anyone may open it (no user password), only its owner may change it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password="", owner_password="owner-only", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
