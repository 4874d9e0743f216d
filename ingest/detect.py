"""Which loader reads a file: decided by its content first, its extension second."""

from __future__ import annotations

from pathlib import PurePath

from kb.errors import LoadError

SUPPORTED = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "markdown",
             ".markdown": "markdown", ".txt": "text", ".text": "text", ".docx": "docx"}
_MAGIC = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"),
          (b"\xd0\xcf\x11\xe0", "an old Office file (.doc/.xls): save it as .docx"),
          (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"{\\rtf", "an RTF file")]


def detect(data: bytes, name: str) -> str:
    """One of pdf, docx, html, markdown, text; LoadError for anything unsupported."""
    if not data or not data.strip():
        raise LoadError("empty file")
    ext = PurePath(name).suffix.lower()
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx"  # the Word loader checks the archive itself
    if ext == ".pdf":
        raise LoadError("named .pdf but is not a PDF")
    if ext == ".docx":
        raise LoadError("named .docx but is not a Word document")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise LoadError(f"unsupported file: {what}")
    kind = SUPPORTED.get(ext)
    sniff = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().replace(b"\x00", b"")
    if kind in (None, "text") and (sniff.startswith(b"<!doctype html") or sniff.startswith(b"<html")):
        return "html"
    if kind is None:
        raise LoadError(f"unsupported file type {ext or '(no extension)'}")
    return kind
