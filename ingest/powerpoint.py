"""PowerPoint .pptx with python-pptx: one page per slide, its title as a heading, then its text
frames, tables (a line per row) and speaker notes."""

from __future__ import annotations

import io

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .archive import open_zip, words

MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
WHAT = "PowerPoint presentation"
MAX_DEPTH = 20  # groups within groups: decks nest a few deep; more is a crafted file


def load_pptx(data: bytes, name: str, max_slides: int = 2000) -> LoadedDocument:
    open_zip(data, WHAT, "ppt/presentation.xml")
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
        slides = deck.slides
        count = len(slides)
    except Exception as exc:  # python-pptx surfaces zip, XML, key and value errors alike
        raise LoadError(f"corrupt {WHAT}: {str(exc)[:200]}") from None
    if count > max_slides:
        raise LoadError(f"presentation has {count} slides, more than the limit of {max_slides}")
    blocks: list[Block] = []
    for number, slide in enumerate(slides, start=1):
        try:
            blocks.extend(_slide_blocks(slide, number))
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(f"corrupt {WHAT}: slide {number}: {str(exc)[:200]}") from None
    if not any(b.text for b in blocks):
        raise LoadError("empty presentation: no text on any slide")
    title = words(deck.core_properties.title) or None
    return LoadedDocument(blocks=blocks, title=title, mime=MIME)


def _slide_blocks(slide, page: int) -> list[Block]:
    """The slide's title as a heading (level 1), its other text in reading order, its notes last."""
    title_shape = slide.shapes.title
    title = words(title_shape.text_frame.text) if title_shape is not None and title_shape.has_text_frame else ""
    blocks = [Block(title, "heading", 1, page)] if title else []
    for shape in _reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        blocks.extend(_shape_blocks(shape, page, 0))
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = _frame_text(slide.notes_slide.notes_text_frame)
        if notes:
            blocks.append(Block(f"Speaker notes: {notes}", "para", 0, page))
    return blocks


def _reading_order(shapes) -> list:
    """Top to bottom, then left to right (shapes without a position keep their place last)."""
    return sorted(shapes, key=lambda s: (s.top is None, s.top or 0, s.left or 0))


def _shape_blocks(shape, page: int, depth: int) -> list[Block]:
    if depth > MAX_DEPTH:
        raise LoadError(f"shapes grouped more than {MAX_DEPTH} deep: refused")
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        return [b for inner in _reading_order(shape.shapes) for b in _shape_blocks(inner, page, depth + 1)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = []
        for row in shape.table.rows:
            cells = list(dict.fromkeys(words(cell.text) for cell in row.cells))
            line = " | ".join(c for c in cells if c)
            if line:
                rows.append(Block(line, "para", 0, page))
        return rows
    if shape.has_text_frame:
        text = _frame_text(shape.text_frame)
        return [Block(text, "para", 0, page)] if text else []
    return []


def _frame_text(frame) -> str:
    """A text frame's paragraphs (bullets), one a line."""
    return "\n".join(line for line in (words(p.text) for p in frame.paragraphs) if line)
