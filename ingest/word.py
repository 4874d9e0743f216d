"""Word .docx with python-docx: paragraphs, heading styles as structure, tables as text."""

from __future__ import annotations

import io
import re
import zipfile

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

MAX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_RATIO = 200
_HEADING = re.compile(r"^heading\s*([1-6])$", re.I)


def check_zip(data: bytes) -> None:
    """Refuse archives that are not Word documents or would inflate beyond reason (zip bombs)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise LoadError(f"corrupt Word document: {exc}") from None
    if "word/document.xml" not in names:
        raise LoadError("a zip archive, but not a Word document")
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > MAX_UNCOMPRESSED or total / packed > MAX_RATIO:
        raise LoadError(f"Word document would inflate to {total // (1024 * 1024)} MB: refused as a zip bomb")


def load_docx(data: bytes, name: str) -> LoadedDocument:
    check_zip(data)
    import docx

    try:
        title, blocks = _read(docx.Document(io.BytesIO(data)))
    except Exception as exc:  # python-docx surfaces zip, XML, key and attribute errors alike
        raise LoadError(f"corrupt Word document: {str(exc)[:200]}") from None
    if not blocks:
        raise LoadError("empty Word document: no text")
    return LoadedDocument(blocks=blocks, title=title, mime=(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))


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
