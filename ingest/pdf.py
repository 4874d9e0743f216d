"""PDF with pypdf: text per page (page numbers kept), headings from the outline when it has one."""

from __future__ import annotations

import io
import logging
import re
import time

from kb.errors import LoadError, MissingDependency
from kb.models import Block, LoadedDocument

from .dates import normalize_date
from .ocr import OcrOptions, scanned_note
from .scanned import no_text_reason, read_scans
from .textfile import clean
from .titles import TypeSizes, placeholder

logging.getLogger("pypdf").setLevel(logging.ERROR)
_SENTENCE_END = re.compile(r"[.!?:;\"”)]$")
BOMB = "PDF refused: over pypdf's safety limits on decompressed size or content (a decompression bomb?)"
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d{1,4}(\s*(of|/)\s*\d{1,4})?\s*$", re.I)


def load_pdf(data: bytes, name: str, max_pages: int = 2000, max_seconds: float = 60.0,
             ocr: OcrOptions = OcrOptions()) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, LimitReachedError, PdfReadError

    started = time.monotonic()
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:  # an owner password only (copy-protected) opens with the empty one
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise
            except Exception:  # pypdf raises several kinds for unsupported encryption
                opened = 0
            if not opened:
                raise LoadError("encrypted PDF: it needs a password")
        pages = len(reader.pages)
    except LoadError:
        raise
    except DependencyError as exc:
        raise MissingDependency(f"PDF: {exc}") from None
    except LimitReachedError:
        raise LoadError(BOMB) from None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError,
            RecursionError, AssertionError) as exc:
        raise LoadError(f"corrupt PDF: {_short(exc)}") from None
    if pages == 0:
        raise LoadError("corrupt PDF: no pages")
    if pages > max_pages:
        raise LoadError(f"PDF has {pages} pages, more than the limit of {max_pages}")

    headings = _outline(reader)
    info = _info(reader)
    sizes = TypeSizes() if placeholder(info.get("title")) else None  # the first page's type, for a title
    texts = []
    for number in range(pages):
        if time.monotonic() - started > max_seconds:
            raise LoadError(f"PDF text extraction took longer than {max_seconds:g} s (page {number + 1})")
        try:
            texts.append(clean(reader.pages[number].extract_text(visitor_text=sizes if number == 0 else None) or ""))
        except LoadError:
            raise LoadError(f"page {number + 1} holds binary data, not text") from None
        except DependencyError as exc:
            raise MissingDependency(f"PDF: page {number + 1}: {exc}") from None
        except LimitReachedError:
            raise LoadError(f"{BOMB} (page {number + 1})") from None
        except Exception as exc:  # pypdf raises many kinds for a broken page
            raise LoadError(f"corrupt PDF: page {number + 1}: {_short(exc)}") from None
    texts, scanned, pictured, unread = read_scans(reader, texts, ocr)  # pages without a text layer, by OCR
    blocks: list[Block] = []
    for number, text in enumerate(strip_running_lines(texts)):
        blocks.extend(_page_blocks(text, number + 1, headings.get(number, [])))
    if not any(b.kind == "para" for b in blocks):
        raise LoadError(no_text_reason(ocr, len(pictured)))
    title = (info.get("title") if not placeholder(info.get("title")) else None) or (sizes and sizes.title()) \
        or next((b.text for b in blocks if b.kind == "heading"), None)
    notes = ([scanned_note(scanned)] if scanned else []) + [f"{reason}: left out" for reason in unread]
    if pictured and not ocr.enabled:
        notes.append(f"{len(pictured)} scanned page{'s' if len(pictured) > 1 else ''} without a text layer "
                     "not read: OCR is off (KB_OCR=0)")
    return LoadedDocument(blocks=blocks, title=title, published=info.get("published"), mime="application/pdf",
                          warnings=notes)


def strip_running_lines(pages: list[str]) -> list[str]:
    """Drop page numbers and running headers or footers (the same first or last line on most pages)."""
    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    edges: dict[str, int] = {}
    for text in pages:
        lines = [line for line in text.split("\n") if line.strip()]
        for line in {*lines[:1], *lines[-1:]}:
            edges[key(line)] = edges.get(key(line), 0) + 1
    running = {k for k, n in edges.items() if len(pages) >= 3 and n >= max(3, len(pages) // 2)}
    out = []
    for text in pages:
        lines = text.split("\n")
        kept = [line for i, line in enumerate(lines)
                if not _PAGE_NUMBER.match(line) and not (key(line) in running and line.strip()
                                                         and (i < 2 or i >= len(lines) - 2))]
        out.append("\n".join(kept))
    return out


def _outline(reader) -> dict[int, list[tuple[int, str]]]:
    """Outline entries by page index: (level, title)."""
    found: dict[int, list[tuple[int, str]]] = {}

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
                title = " ".join(str(item.title).split())
            except Exception:
                continue
            if page is not None and page >= 0 and title:
                found.setdefault(page, []).append((level, title))

    try:
        walk(reader.outline, 1)
    except Exception:
        return {}
    return found


def _page_blocks(text: str, page: int, headings: list[tuple[int, str]]) -> list[Block]:
    """Paragraphs of one page, split at the outline's headings where they appear in the text."""
    lines = [" ".join(line.split()) for line in text.split("\n")]
    blocks, para = [], []
    pending = list(headings)
    widest = max((len(line) for line in lines), default=0)

    def flush():
        if para:
            body = re.sub(r"(\w)- (\w)", r"\1\2", " ".join(para))
            blocks.append(Block(body, "para", 0, page))
            para.clear()

    for line in lines:
        if not line:
            flush()
            continue
        match = next((h for h in pending if h[1].lower() == line.lower()), None)
        if match:
            flush()
            pending.remove(match)
            blocks.append(Block(line, "heading", match[0], page))
            continue
        para.append(line)
        if _SENTENCE_END.search(line) and len(line) < 0.8 * widest:
            flush()  # a short line ending a sentence usually ends a paragraph
    flush()
    return blocks


def _info(reader) -> dict:
    try:
        meta = reader.metadata or {}
        title = str(meta.get("/Title") or "").strip() or None
        created = str(meta.get("/CreationDate") or "")
    except Exception:
        return {}
    published = None
    if created.startswith("D:") and len(created) >= 10:
        published = normalize_date(f"{created[2:6]}-{created[6:8]}-{created[8:10]}")
    return {"title": title, "published": published}


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
