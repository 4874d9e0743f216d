"""EPUB with ebooklib: chapters in spine order, each under a heading (its table-of-contents entry,
else its own first heading), its XHTML cleaned as a web page is."""

from __future__ import annotations

import io
import warnings

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .archive import open_zip, words
from .dates import normalize_date
from .html import load_html


def load_epub(data: bytes, name: str) -> LoadedDocument:
    open_zip(data, "EPUB book", "META-INF/container.xml")
    from ebooklib import ITEM_DOCUMENT, epub

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib's notes on options it will change
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": False})
        chapters = [book.get_item_with_id(idref) for idref, _ in book.spine]
        contents = _contents(book.toc)
        title = words(_first(book.get_metadata("DC", "title"))) or None
        published = normalize_date(_first(book.get_metadata("DC", "date")))
    except LoadError:
        raise
    except Exception as exc:  # ebooklib raises its own, zip, lxml and key errors
        raise LoadError(f"corrupt EPUB book: {str(exc)[:200]}") from None
    blocks: list[Block] = []
    for item in chapters:
        if item is None or item.get_type() != ITEM_DOCUMENT:
            continue
        try:
            chapter = load_html(item.get_content(), item.get_name())
        except LoadError:  # a cover or a page of images: nothing to read
            continue
        heading = contents.get(item.get_name()) or next(
            (b.text for b in chapter.blocks if b.kind == "heading"), "")
        body = chapter.blocks
        if heading:
            blocks.append(Block(heading, "heading", 1))
            if body and body[0].kind == "heading" and body[0].text.lower() == heading.lower():
                body = body[1:]
        blocks.extend(Block(b.text, b.kind, min(6, b.level + 1) if b.kind == "heading" else 0) for b in body)
    if not any(b.kind == "para" for b in blocks):
        raise LoadError("empty EPUB book: no text in any chapter")
    return LoadedDocument(blocks=blocks, title=title, published=published, mime="application/epub+zip")


def _contents(toc) -> dict[str, str]:
    """Chapter file names by their first table-of-contents title."""
    found: dict[str, str] = {}

    def walk(entries, depth):
        for entry in entries if depth < 20 else ():
            if isinstance(entry, tuple):  # (section, children)
                walk([entry[0]], depth + 1)
                walk(entry[1], depth + 1)
            elif getattr(entry, "href", None):
                found.setdefault(entry.href.split("#")[0], words(getattr(entry, "title", "")))

    walk(toc, 0)
    return found


def _first(values) -> str:
    return str(values[0][0]) if values and values[0] and values[0][0] else ""
