"""Loaders: bytes plus a name in, a `LoadedDocument` (blocks with structure) out."""

from __future__ import annotations

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
        return load_pdf(data, name, max_pdf_pages, max_seconds)
    if kind == "docx":
        return load_docx(data, name)
    if kind == "html":
        return load_html(data, name)
    if kind == "markdown":
        return load_markdown(data, name)
    return load_text(data, name)
