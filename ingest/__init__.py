"""Loaders: bytes plus a name in, a `LoadedDocument` (blocks with structure) out."""

from __future__ import annotations

from kb.models import LoadedDocument

from .detect import SUPPORTED, detect
from .epub import load_epub
from .html import load_html
from .image import load_image
from .mail import load_eml, load_msg
from .markdown import load_markdown
from .ocr import OcrOptions
from .opendocument import load_odf
from .pdf import load_pdf
from .powerpoint import load_pptx
from .rtf import load_rtf
from .spreadsheet import load_csv, load_xlsx
from .textfile import load_text
from .titles import titled
from .word import load_docx

__all__ = ["SUPPORTED", "detect", "load", "titled"]

# each kind detect() names, and its loader (those with pages take the page limit as well)
READERS = {"docx": load_docx, "xlsx": load_xlsx, "csv": load_csv, "eml": load_eml, "msg": load_msg,
           "rtf": load_rtf, "epub": load_epub, "html": load_html, "markdown": load_markdown, "text": load_text}
PAGED = {"pptx": load_pptx, "odf": load_odf}


def load(data: bytes, name: str, max_pdf_pages: int = 2000, max_seconds: float = 60.0,
         ocr: OcrOptions = OcrOptions()) -> LoadedDocument:
    """Read a file's text and structure; raises `LoadError` with a reason a curator can act on."""
    kind = detect(data, name)
    if kind == "pdf":
        return titled(load_pdf(data, name, max_pdf_pages, max_seconds, ocr))
    if kind == "image":
        return titled(load_image(data, name, ocr))
    if kind in PAGED:
        return titled(PAGED[kind](data, name, max_pdf_pages))
    return titled(READERS[kind](data, name))
