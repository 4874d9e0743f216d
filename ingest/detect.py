"""Which loader reads a file: decided by its content first, its extension second."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import PurePath

from kb.errors import LoadError

SUPPORTED = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "markdown",
             ".markdown": "markdown", ".txt": "text", ".text": "text", ".docx": "docx", ".pptx": "pptx",
             ".xlsx": "xlsx", ".xlsm": "xlsx", ".csv": "csv", ".tsv": "csv", ".eml": "eml", ".msg": "msg",
             ".odt": "odf", ".ods": "odf", ".odp": "odf", ".rtf": "rtf", ".epub": "epub",
             ".png": "image", ".jpg": "image", ".jpeg": "image", ".tif": "image", ".tiff": "image"}
SUPPORTED_NAMES = ("PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), CSV, email (.eml, .msg), "
                   "OpenDocument (.odt, .ods, .odp), RTF, EPUB, HTML, Markdown, plain text, and scans: "
                   "PNG, JPEG and TIFF images, read by OCR")  # what a refusal says kb reads
IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")  # PNG, JPEG, TIFF: read by OCR
_MAGIC = [(b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"),
          (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive")]
# formats kb does not read, by extension: named in a refusal rather than called by their extension
UNSUPPORTED = {".key": "Apple Keynote (.key)", ".pages": "Apple Pages (.pages)", ".numbers": "Apple Numbers (.numbers)",
               ".doc": "an old Word document (.doc): save it as .docx", ".xls": "an Excel workbook (.xls)",
               ".ppt": "a PowerPoint presentation (.ppt)", ".odg": "an OpenDocument drawing (.odg)",
               ".zip": "a zip archive", ".mobi": "a Kindle book (.mobi)", ".wpd": "a WordPerfect document (.wpd)",
               ".vsdx": "a Visio drawing (.vsdx)", ".pub": "a Publisher document (.pub)", ".mbox": "a mailbox (.mbox)",
               ".ics": "a calendar file (.ics)", ".vcf": "a contact card (.vcf)", ".json": "JSON data (.json)",
               ".xml": "XML data (.xml)", ".mp3": "audio (.mp3)", ".mp4": "video (.mp4)", ".wav": "audio (.wav)"}
_HEADER_LINE = re.compile(rb"^(from|to|subject|date|received|return-path|message-id|mime-version|delivered-to|"
                          rb"x-[\w-]+|content-type|reply-to|cc|sender):[ \t]", re.I | re.M)


def unsupported(name: str) -> str:
    """Why kb will not read a file of this name: "unsupported file type: Apple Keynote (.key)"."""
    ext = PurePath(name).suffix.lower()
    return f"unsupported file type: {UNSUPPORTED.get(ext, ext or '(no extension)')}"


def detect(data: bytes, name: str) -> str:
    """The loader for a file: one of the values of SUPPORTED; LoadError for anything unsupported."""
    if not data or not data.strip():
        raise LoadError("empty file")
    ext = PurePath(name).suffix.lower()
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data, ext)
    if data.startswith(OLE[:4]):
        return _ole_kind(ole_names(data), ext)
    if data.lstrip()[:5] == b"{\\rtf":
        return "rtf"
    if ext == ".pdf":
        raise LoadError("named .pdf but is not a PDF")
    if ext in _CONTAINERS:
        raise LoadError(f"named {ext} but is not {_CONTAINERS[ext]}")
    if data.startswith(IMAGES):
        return "image"
    if SUPPORTED.get(ext) == "image":
        raise LoadError(f"named {ext} but is not a PNG, JPEG or TIFF image")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise LoadError(f"unsupported file: {what}")
    kind = SUPPORTED.get(ext)
    sniff = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().replace(b"\x00", b"")
    if kind in (None, "text") and (sniff.startswith(b"<!doctype html") or sniff.startswith(b"<html")):
        return "html"
    if kind is None and _looks_like_email(head):
        return "eml"
    if kind is None:
        raise LoadError(unsupported(name))
    return kind


def _looks_like_email(head: bytes) -> bool:
    """A message saved without its .eml extension: it opens with mail headers (three or more)."""
    top = head.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return top[:1].isalpha() and len(_HEADER_LINE.findall(top)) >= 3 and _HEADER_LINE.match(top) is not None


_ZIPPED = [("word/document.xml", "docx"), ("xl/workbook.xml", "xlsx"), ("ppt/presentation.xml", "pptx")]
_ZIP_KINDS = {".docx": "a Word document", ".pptx": "a PowerPoint presentation", ".xlsx": "an Excel workbook",
              ".xlsm": "an Excel workbook", ".odt": "an OpenDocument file", ".ods": "an OpenDocument file",
              ".odp": "an OpenDocument file", ".epub": "an EPUB book"}
_CONTAINERS = {**_ZIP_KINDS, ".msg": "an Outlook message"}  # a file so named must be one
_ODF = {"application/vnd.oasis.opendocument.text": "odf", "application/vnd.oasis.opendocument.spreadsheet": "odf",
        "application/vnd.oasis.opendocument.presentation": "odf", "application/epub+zip": "epub"}
_ODF_OTHER = {"application/vnd.oasis.opendocument.graphics": "an OpenDocument drawing (.odg)",
              "application/vnd.oasis.opendocument.formula": "an OpenDocument formula (.odf)",
              "application/vnd.oasis.opendocument.chart": "an OpenDocument chart (.odc)",
              "application/vnd.oasis.opendocument.text-master": "an OpenDocument master document (.odm)"}
_IWORK = {".key": "Apple Keynote (.key)", ".pages": "Apple Pages (.pages)", ".numbers": "Apple Numbers (.numbers)"}


def _zip_kind(data: bytes, ext: str) -> str:
    """Which loader reads a zip archive, from the parts it holds (its central directory and at most
    the small `mimetype` entry). An archive too broken to tell goes to the loader its extension
    names (Word when none does), which reports it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist()[:10_000])
            for part, kind in _ZIPPED:
                if part in names:
                    return kind
            if "mimetype" in names and archive.getinfo("mimetype").file_size < 200:
                mime = archive.read("mimetype").decode("ascii", "replace").strip()
                if mime in _ODF:
                    return _ODF[mime]
                raise LoadError(f"unsupported file: {_ODF_OTHER.get(mime, f'a zip archive ({mime[:60]})')}")
            if "Index/Document.iwa" in names or "index.apxl" in names or ext in _IWORK:
                raise LoadError(f"unsupported file type: {_IWORK.get(ext, 'an Apple iWork document')}")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, KeyError):
        return SUPPORTED.get(ext) if ext in _ZIP_KINDS else "docx"
    raise LoadError(f"unsupported file: a zip archive, not {_ZIP_KINDS.get(ext, 'a document kb reads')}")


# OLE compound files: one container for Word, Excel and PowerPoint 97-2003, Outlook messages, and
# Office 2007+ files encrypted with a password (their package sits in an "EncryptedPackage" stream)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKER = 0xFFFFFFFA  # sector numbers from here up mean end of chain, free, or FAT bookkeeping
_ENCRYPTED = {".docx": "Word document", ".xlsx": "Excel workbook", ".pptx": "PowerPoint presentation",
              ".docm": "Word document", ".xlsm": "Excel workbook", ".pptm": "PowerPoint presentation"}
_OLD = {".doc": "an old Word document (.doc): save it as .docx", ".xls": "an Excel workbook (.xls)",
        ".ppt": "a PowerPoint presentation (.ppt)"}


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


def _ole_kind(names: set[str], ext: str) -> str:
    """An Outlook message ("msg"), or LoadError naming what else an OLE compound file is."""
    if "__properties_version1.0" in names or any(name.startswith("__substg1.0_") for name in names):
        return "msg"
    raise LoadError(_ole_reason(names, ext))


def _ole_reason(names: set[str], ext: str) -> str:
    """What an OLE compound file kb does not read is, from the streams it holds or else its name."""
    if "encryptedpackage" in names:
        what = _ENCRYPTED.get(ext)
        if what == "Word document":
            return "encrypted Word document: it needs a password (remove it, save, and try again)"
        return f"unsupported file: a password-protected {what or 'Office file'}{f' ({ext})' if what else ''}"
    if "worddocument" in names:
        return f"unsupported file: {_OLD['.doc']}"
    if "workbook" in names or "book" in names:
        return f"unsupported file: {_OLD['.xls']}"
    if "powerpoint document" in names:
        return f"unsupported file: {_OLD['.ppt']}"
    return f"unsupported file: {_OLD.get(ext, 'an OLE compound file (an old Microsoft Office format?)')}"
