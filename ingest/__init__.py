"""Loaders: bytes plus a name in, a `LoadedDocument` (blocks with structure) out."""

from __future__ import annotations

from dataclasses import replace

from kb.models import LoadedDocument

from .detect import SUPPORTED, detect
from .html import load_html
from .markdown import load_markdown
from .pdf import load_pdf
from .textfile import load_text
from .word import load_docx

__all__ = ["SUPPORTED", "detect", "load"]


def load(data: bytes, name: str, max_pdf_pages: int = 2000, max_seconds: float = 60.0) -> LoadedDocument:
    """Read a file's text and structure; raises `LoadError` with a reason a curator can act on."""
    kind = detect(data, name)
    if kind == "pdf":
        return titled(load_pdf(data, name, max_pdf_pages, max_seconds))
    if kind == "docx":
        return titled(load_docx(data, name))
    if kind == "html":
        return titled(load_html(data, name))
    if kind == "markdown":
        return titled(load_markdown(data, name))
    return titled(load_text(data, name))


MAX_TITLE = 150  # a first line longer than this is a sentence, not a title


def titled(doc: LoadedDocument) -> LoadedDocument:
    """A document whose properties name no title takes its first heading, else its first line
    when that reads as a title (short, not ending as a sentence does): never its file name."""
    if doc.title:
        return doc
    heading = next((b.text.strip() for b in doc.blocks if b.kind == "heading" and b.text.strip()), "")
    first = next((b.text.strip().splitlines()[0].strip() for b in doc.blocks if b.text.strip()), "")
    if heading:
        return replace(doc, title=heading[:MAX_TITLE])
    if 3 <= len(first) <= MAX_TITLE and not first.endswith((".", ",", ";", ":")):
        return replace(doc, title=first)
    return doc
