"""Word .docx with python-docx: paragraphs, heading styles as structure, tables as text. A document
python-docx cannot walk (a table grid Word tolerates and it does not) is read from its XML instead."""

from __future__ import annotations

import io
import re
from xml.etree.ElementTree import Element

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .archive import open_zip, read_xml, words

MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
WHAT = "Word document"
_HEADING = re.compile(r"^heading\s*([1-6])$", re.I)
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DC = "{http://purl.org/dc/elements/1.1/}"


def load_docx(data: bytes, name: str) -> LoadedDocument:
    archive = open_zip(data, WHAT, "word/document.xml")
    import docx

    warnings = []
    try:
        title, blocks = _read(docx.Document(io.BytesIO(data)))
    except Exception as exc:  # python-docx surfaces zip, XML, key and attribute errors alike
        reason = str(exc)[:200]
        title, blocks = _read_xml(archive, reason)
        warnings.append(f"read from the document's XML, without python-docx ({reason})")
    if not blocks:
        raise LoadError("empty Word document: no text")
    return LoadedDocument(blocks=blocks, title=title, mime=MIME, warnings=warnings)


def _read(document) -> tuple[str | None, list[Block]]:
    """The core-properties title and the blocks: paragraphs (heading styles as structure), then tables."""
    blocks: list[Block] = []
    title = (document.core_properties.title or "").strip() or None
    for para in document.paragraphs:
        text = " ".join(para.text.split())
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        m = _HEADING.match(style)
        if style.lower() == "title":
            title = title or text
            blocks.append(Block(text, "heading", 1))
        elif m:
            blocks.append(Block(text, "heading", int(m.group(1))))
        else:
            blocks.append(Block(text, "para"))
    for table in document.tables:
        for row in table.rows:
            cells = list(dict.fromkeys(" ".join(c.text.split()) for c in row.cells))
            line = " | ".join(c for c in cells if c)
            if line:
                blocks.append(Block(line, "para"))
    return title, blocks


def _read_xml(archive, reason: str) -> tuple[str | None, list[Block]]:
    """The same blocks from word/document.xml read directly, in document order: paragraphs (headings
    by style name or outline level) and table rows. `reason` is why python-docx could not."""
    body = read_xml(archive, "word/document.xml", WHAT)
    if body is None or body.find(f"{W}body") is None:
        raise LoadError(f"corrupt {WHAT}: {reason}")
    styles = _style_names(read_xml(archive, "word/styles.xml", WHAT))
    core = read_xml(archive, "docProps/core.xml", WHAT)
    title = words(core.findtext(f"{DC}title")) or None if core is not None else None
    blocks: list[Block] = []
    for element in _content(body.find(f"{W}body")):
        if element.tag == f"{W}p":
            text = _text(element)
            if not text:
                continue
            level = _level(element, styles)
            if level == 0 and styles.get(_style_id(element), "").lower() == "title":
                title = title or text
                level = 1
            blocks.append(Block(text, "heading", level) if level else Block(text, "para"))
        else:  # a table: one line per row
            for row in element.iter(f"{W}tr"):
                cells = list(dict.fromkeys(_text(c) for c in row.findall(f"{W}tc")))
                line = " | ".join(c for c in cells if c)
                if line:
                    blocks.append(Block(line, "para"))
    return title, blocks


def _content(parent: Element):
    """Paragraphs and tables in order, looking inside content controls (w:sdt)."""
    for child in parent:
        if child.tag in (f"{W}p", f"{W}tbl"):
            yield child
        elif child.tag == f"{W}sdt" and child.find(f"{W}sdtContent") is not None:
            yield from _content(child.find(f"{W}sdtContent"))


def _text(element: Element) -> str:
    parts = []
    for node in element.iter():
        if node.tag == f"{W}t":
            parts.append(node.text or "")
        elif node.tag in (f"{W}tab", f"{W}br", f"{W}cr"):
            parts.append(" ")
        elif node.tag == f"{W}p":
            parts.append(" ")  # paragraphs within a table cell
    return words("".join(parts))


def _style_id(p: Element) -> str:
    style = p.find(f"{W}pPr/{W}pStyle")
    return style.get(f"{W}val", "") if style is not None else ""


def _level(p: Element, styles: dict[str, str]) -> int:
    """A paragraph's heading level (0: not a heading), by its style's name, else its outline level."""
    m = _HEADING.match(styles.get(_style_id(p), _style_id(p)))
    if m:
        return int(m.group(1))
    outline = p.find(f"{W}pPr/{W}outlineLvl")
    value = outline.get(f"{W}val", "") if outline is not None else ""
    return int(value) + 1 if value.isdigit() and int(value) < 6 else 0


def _style_names(styles: Element | None) -> dict[str, str]:
    """Style ids ("Heading1", "Kop1") by the names Word shows ("heading 1")."""
    if styles is None:
        return {}
    return {s.get(f"{W}styleId", ""): (s.find(f"{W}name").get(f"{W}val", "") if s.find(f"{W}name") is not None else "")
            for s in styles.iter(f"{W}style")}
