"""OpenDocument text, spreadsheets and presentations (.odt, .ods, .odp), read from their XML with the
standard library: headings from text:h, paragraphs, lists and tables; a sheet's rows as a
spreadsheet's are; a presentation's slides as pages. (odfpy would parse the same XML into a larger
tree, with no say over repeated rows and cells, which is where an ODS file hides a bomb.)"""

from __future__ import annotations

from typing import Iterator
from xml.etree.ElementTree import Element

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .archive import open_zip, read_xml, words
from .spreadsheet import MAX_COLUMNS, RowBudget, blocks_of_sheet

NS = {"office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
      "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
      "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
      "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
      "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
      "dc": "http://purl.org/dc/elements/1.1/"}
KINDS = {"text": ("OpenDocument text", "application/vnd.oasis.opendocument.text"),
         "spreadsheet": ("OpenDocument spreadsheet", "application/vnd.oasis.opendocument.spreadsheet"),
         "presentation": ("OpenDocument presentation", "application/vnd.oasis.opendocument.presentation")}
MAX_DEPTH = 50  # sections, lists and frames within each other


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def load_odf(data: bytes, name: str, max_pages: int = 2000) -> LoadedDocument:
    archive = open_zip(data, "OpenDocument file", "content.xml")
    content = read_xml(archive, "content.xml", "OpenDocument file")
    body = content.find(_q("office:body")) if content is not None else None
    kind = next((k for k in KINDS if body is not None and body.find(_q(f"office:{k}")) is not None), None)
    if kind is None:
        raise LoadError("unsupported file: an OpenDocument file that is not text, a spreadsheet or a presentation")
    what, mime = KINDS[kind]
    root = body.find(_q(f"office:{kind}"))
    warnings: list[str] = []
    if kind == "text":
        blocks = list(_flow(root, None, 0))
    elif kind == "spreadsheet":
        budget = RowBudget()
        blocks = []
        for sheet in root.iter(_q("table:table")):
            blocks.extend(blocks_of_sheet(sheet.get(_q("table:name"), ""), _rows(sheet), budget))
            if budget.cut:
                warnings.append(budget.cut)
                break
    else:
        pages = root.findall(_q("draw:page"))
        if len(pages) > max_pages:
            raise LoadError(f"presentation has {len(pages)} slides, more than the limit of {max_pages}")
        blocks = [b for number, page in enumerate(pages, start=1) for b in _slide(page, number)]
    if not any(b.text for b in blocks):
        raise LoadError(f"empty {what}: no text")
    meta = read_xml(archive, "meta.xml", what)
    title = words(meta.findtext(f"{_q('office:meta')}/{_q('dc:title')}")) or None if meta is not None else None
    return LoadedDocument(blocks=blocks, title=title, mime=mime, warnings=warnings)


def _flow(parent: Element, page: int | None, depth: int) -> Iterator[Block]:
    """Text in document order: headings, paragraphs, list items, tables (a line per row), and what
    sections, lists and frames hold."""
    if depth > MAX_DEPTH:
        raise LoadError(f"OpenDocument content nested more than {MAX_DEPTH} deep: refused")
    for child in parent:
        if child.tag == _q("text:h"):
            text = text_of(child)
            level = child.get(_q("text:outline-level"), "1")
            if text:
                yield Block(text, "heading", min(6, int(level)) if level.isdigit() and int(level) > 0 else 1, page)
        elif child.tag == _q("text:p"):
            text = text_of(child)
            if text:
                yield Block(text, "para", 0, page)
            for frame in child.iter(_q("draw:text-box")):  # text boxes anchored in a paragraph
                yield from _flow(frame, page, depth + 1)
        elif child.tag == _q("table:table"):
            for row in child.iter(_q("table:table-row")):  # a repeated row once: in text it adds nothing
                line = " | ".join(dict.fromkeys(c for c in _cells(row) if c))
                if line:
                    yield Block(line, "para", 0, page)
        elif child.tag in (_q("office:forms"), _q("text:sequence-decls"), _q("table:table-columns")):
            continue
        else:  # text:list, text:list-item, text:section, draw:frame, draw:text-box...
            yield from _flow(child, page, depth + 1)


def text_of(element: Element) -> str:
    """An element's text, with ODF's space, tab and line-break elements as spaces."""
    parts = [element.text or ""]
    for child in element:
        if child.tag in (_q("text:s"), _q("text:tab"), _q("text:line-break")):
            parts.append(" ")
        elif child.tag != _q("draw:frame"):  # a frame's text is its own paragraphs
            parts.append(text_of(child))
        parts.append(child.tail or "")
    return words("".join(parts))


def _rows(table: Element) -> Iterator[tuple[int, list[str]]]:
    """A sheet's rows, numbered, as lists of cell texts. Repeated rows (how ODF writes the empty
    million rows of a sheet) are expanded only while they hold text, and no further than the
    reader's budget takes them."""
    number = 1
    for row in table.iter(_q("table:table-row")):
        cells = _cells(row)
        repeat = _count(row.get(_q("table:number-rows-repeated")))
        for n in range(repeat if cells else 0):
            yield number + n, cells
        number += repeat


def _cells(row: Element) -> list[str]:
    """A row's cell texts, repeated cells expanded up to MAX_COLUMNS, empty ones at its end dropped."""
    cells: list[str] = []
    for cell in row:
        if cell.tag not in (_q("table:table-cell"), _q("table:covered-table-cell")):
            continue
        text = " ".join(text_of(p) for p in cell.findall(_q("text:p"))) or cell.get(_q("office:value"), "")
        cells.extend([text] * min(_count(cell.get(_q("table:number-columns-repeated"))), MAX_COLUMNS - len(cells)))
        if len(cells) >= MAX_COLUMNS:
            break
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _count(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else 1


def _slide(page: Element, number: int) -> list[Block]:
    """A slide: its title frame as a heading, the other frames' text, then its speaker notes."""
    title, rest, spoken = [], [], ""
    for child in page:
        if child.tag == _q("presentation:notes"):
            spoken = " ".join(b.text for b in _flow(child, number, 0))
        elif child.get(_q("presentation:class")) == "title":
            title += [Block(b.text, "heading", 1, number) for b in _flow(child, number, 0)]
        else:
            rest += _flow(child, number, 0)
    return title + rest + ([Block(f"Speaker notes: {spoken}", "para", 0, number)] if spoken else [])
