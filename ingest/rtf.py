"""RTF with striprtf: a paragraph per \\par, the \\info group's title and creation date."""

from __future__ import annotations

import codecs
import re

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .dates import normalize_date
from .textfile import clean

_CODEPAGE = re.compile(rb"\\ansicpg(\d{3,5})")
_TITLE = re.compile(rb"{\\title\s?((?:[^{}\\]|\\.)*)}")
_CREATED = re.compile(rb"{\\creatim\\yr(\d{4})\\mo(\d{1,2})\\dy(\d{1,2})")


def load_rtf(data: bytes, name: str) -> LoadedDocument:
    from striprtf.striprtf import rtf_to_text

    encoding = _encoding(data)
    try:
        text = clean(rtf_to_text(data.decode("latin-1"), encoding=encoding, errors="replace"))
    except LoadError:
        raise LoadError("corrupt RTF: binary data, not text") from None
    except (ValueError, IndexError, KeyError, RecursionError) as exc:
        raise LoadError(f"corrupt RTF: {str(exc)[:200]}") from None
    blocks = [Block(" ".join(line.split()), "para") for line in text.split("\n") if line.strip()]
    if not blocks:
        raise LoadError("empty RTF document: no text")
    head = data[:65536]
    title = None
    if m := _TITLE.search(head):
        title = " ".join(rtf_to_text("{\\rtf1 " + m.group(1).decode("latin-1") + "}", encoding=encoding,
                                     errors="replace").split()) or None
    published = None
    if m := _CREATED.search(head):
        published = normalize_date(f"{int(m.group(1)):04d}-{int(m.group(2)):02d}-{int(m.group(3)):02d}")
    return LoadedDocument(blocks=blocks, title=title, published=published, mime="application/rtf")


def _encoding(data: bytes) -> str:
    """The document's code page (\\ansicpg1252), when Python knows it; else cp1252, RTF's default."""
    m = _CODEPAGE.search(data[:4096])
    if m:
        try:
            return codecs.lookup(f"cp{int(m.group(1))}").name
        except LookupError:
            pass
    return "cp1252"
