"""Which loader reads a file: decided by its content first, its extension second."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import PurePath

from kb.errors import LoadError

SUPPORTED = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "markdown",
             ".markdown": "markdown", ".txt": "text", ".text": "text", ".docx": "docx"}
SUPPORTED_NAMES = "PDF, Word (.docx), HTML, Markdown and plain text"  # what a refusal says kb reads
_MAGIC = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"),
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
        what = _zip_kind(data)
        if what:
            raise LoadError(f"unsupported file: {what}")
        return "docx"  # the Word loader checks the archive itself
    if data.startswith(OLE[:4]):
        raise LoadError(_ole_reason(ole_names(data), ext))
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


_ZIPPED = [("word/document.xml", None), ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
           ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)")]
_ODF = {"application/vnd.oasis.opendocument.text": "an OpenDocument text (.odt)",
        "application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (.ods)",
        "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (.odp)",
        "application/epub+zip": "an EPUB book"}


def _zip_kind(data: bytes) -> str | None:
    """What a zip archive holds when it is not a Word document (None: a Word document, or an
    archive too broken to tell, which the Word loader then reports). Reads the central directory
    and at most the small `mimetype` entry."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist()[:10_000])
            for part, what in _ZIPPED:
                if part in names:
                    return what
            if "mimetype" in names and archive.getinfo("mimetype").file_size < 200:
                kind = archive.read("mimetype").decode("ascii", "replace").strip()
                return _ODF.get(kind, f"a zip archive ({kind[:60]})")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, KeyError):
        return None
    return "a zip archive, not a Word document"


# OLE compound files: one container for Word, Excel and PowerPoint 97-2003, Outlook messages, and
# Office 2007+ files encrypted with a password (their package sits in an "EncryptedPackage" stream)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKER = 0xFFFFFFFA  # sector numbers from here up mean end of chain, free, or FAT bookkeeping
_ENCRYPTED = {".docx": "Word document", ".xlsx": "Excel workbook", ".pptx": "PowerPoint presentation",
              ".docm": "Word document", ".xlsm": "Excel workbook", ".pptm": "PowerPoint presentation"}
_OLD = {".doc": "an old Word document (.doc): save it as .docx", ".xls": "an Excel workbook (.xls)",
        ".ppt": "a PowerPoint presentation (.ppt)", ".msg": "an Outlook message (.msg)"}


def ole_names(data: bytes) -> set[str]:
    """Lower-cased names of the streams and storages in an OLE compound file's directory; empty
    where its structure cannot be read. Every walk is bounded by the sectors the file holds."""
    if len(data) < 512 or not data.startswith(OLE):
        return set()
    shift = int.from_bytes(data[30:32], "little")
    if shift not in (9, 12):
        return set()
    size = 1 << shift
    count = len(data) // size

    def sector(n: int) -> bytes:
        return data[(n + 1) * size:(n + 2) * size]

    def numbers(block: bytes) -> tuple[int, ...]:
        return struct.unpack(f"<{len(block) // 4}I", block[:len(block) // 4 * 4])

    fat_sectors = list(numbers(data[76:512]))  # the first 109; the DIFAT chain lists the rest
    difat = int.from_bytes(data[68:72], "little")
    for _ in range(count):
        block = numbers(sector(difat)) if difat < _MARKER else ()
        if not block:
            break
        fat_sectors += block[:-1]
        difat = block[-1]
    fat = numbers(b"".join(sector(n) for n in fat_sectors if n < _MARKER))
    names, n = set(), int.from_bytes(data[48:52], "little")
    for _ in range(count):
        if n >= _MARKER:
            break
        block = sector(n)
        for at in range(0, len(block) - 127, 128):
            length = int.from_bytes(block[at + 64:at + 66], "little")
            if block[at + 66] in (1, 2, 5) and 2 <= length <= 64 and length % 2 == 0:
                names.add(block[at:at + length - 2].decode("utf-16-le", "replace").lower())
        n = fat[n] if n < len(fat) else _MARKER
    return names


def _ole_reason(names: set[str], ext: str) -> str:
    """What an OLE compound file is, from the streams it holds or else its name."""
    if "encryptedpackage" in names:
        what = _ENCRYPTED.get(ext)
        if what == "Word document":
            return "encrypted Word document: it needs a password (remove it, save, and try again)"
        return f"unsupported file: a password-protected {what or 'Office file'}{f' ({ext})' if what else ''}"
    if "__properties_version1.0" in names or any(name.startswith("__substg1.0_") for name in names):
        return "unsupported file: an Outlook message (.msg)"
    if "worddocument" in names:
        return f"unsupported file: {_OLD['.doc']}"
    if "workbook" in names or "book" in names:
        return f"unsupported file: {_OLD['.xls']}"
    if "powerpoint document" in names:
        return f"unsupported file: {_OLD['.ppt']}"
    return f"unsupported file: {_OLD.get(ext, 'an OLE compound file (an old Microsoft Office format?)')}"
