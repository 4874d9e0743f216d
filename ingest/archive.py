"""Zip-based formats (Office Open XML, OpenDocument, EPUB): the archive checked before any part is
parsed, and parts read as XML within the same bounds."""

from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree

from kb.errors import LoadError

MAX_UNCOMPRESSED = 200 * 1024 * 1024  # all parts inflated together
MAX_RATIO = 200  # inflated / packed, over the archive: Office XML packs about 10:1, images 1:1
RATIO_FROM = 16 * 1024 * 1024  # below this much inflated, no ratio is a danger (a tiny sheet packs 300:1)
MAX_ENTRIES = 20_000  # a 2,000-slide deck holds about 8,000 parts


def open_zip(data: bytes, what: str, required: str | None = None) -> zipfile.ZipFile:
    """The archive, once its directory shows it holds `required` and would inflate within bounds;
    LoadError naming `what` ("Word document", "PowerPoint presentation"...) otherwise."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise LoadError(f"corrupt {what}: {exc}") from None
    if len(infos) > MAX_ENTRIES:
        raise LoadError(f"{what} holds {len(infos):,} parts, more than the limit of {MAX_ENTRIES:,}: "
                        "refused as a zip bomb")
    if required and required not in {i.filename for i in infos}:
        raise LoadError(f"a zip archive, but not a {what}")
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > MAX_UNCOMPRESSED or (total > RATIO_FROM and total / packed > MAX_RATIO):
        raise LoadError(f"{what} would inflate to {total // (1024 * 1024)} MB: refused as a zip bomb")
    return archive


def read_xml(archive: zipfile.ZipFile, part: str, what: str) -> ElementTree.Element | None:
    """A part parsed as XML (None when the archive lacks it). Expat refuses entity expansion bombs."""
    try:
        raw = archive.read(part)
    except KeyError:
        return None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise LoadError(f"corrupt {what}: {part}: {exc}") from None
    try:
        return ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise LoadError(f"corrupt {what}: {part}: {exc}") from None


def words(text: str | None) -> str:
    """Whitespace collapsed to single spaces."""
    return " ".join((text or "").split())
