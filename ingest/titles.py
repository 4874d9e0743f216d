"""Titles a file's own content gives when its properties give none, or only a placeholder."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from kb.models import LoadedDocument

MAX_TITLE = 150  # a first line longer than this is a sentence, not a title
LARGE = 1.2  # type this many times the body's size, or more, stands out as a title
# titles that authoring tools fill in, which name no document: "Microsoft Word - notes.docx", "Slide 1"
PLACEHOLDER = re.compile(r"^(microsoft (word|powerpoint|excel) - .*|untitled.*|document\d*|presentation\d*|"
                         r"powerpoint presentation|slide \d+|title|no title|book\d*|sheet\d*|workbook\d*)$", re.I)


def placeholder(title: str | None) -> bool:
    """True for an empty title or one a tool filled in."""
    return not (title or "").strip() or bool(PLACEHOLDER.match(" ".join(title.split())))


def titled(doc: LoadedDocument) -> LoadedDocument:
    """A document whose properties name no title (or a placeholder) takes its first heading, else
    its first line when that reads as a title (short, not ending as a sentence does): never its
    file name."""
    if not placeholder(doc.title):
        return doc
    heading = next((b.text.strip() for b in doc.blocks if b.kind == "heading" and b.text.strip()), "")
    first = next((b.text.strip().splitlines()[0].strip() for b in doc.blocks if b.text.strip()), "")
    if heading and not placeholder(heading):  # "Sheet1", "Slide 1": no title at all is better
        return replace(doc, title=heading[:MAX_TITLE])
    if 3 <= len(first) <= MAX_TITLE and not first.endswith((".", ",", ";", ":")) and not placeholder(first):
        return replace(doc, title=first)
    return replace(doc, title=None)


class TypeSizes:
    """A PDF page's text runs with their type size (pypdf's `visitor_text`), to find its title: the
    words set in the largest type, when that stands out from the body text."""

    def __init__(self):
        self.runs: list[tuple[float, str]] = []

    def __call__(self, text, cm, tm, font, size) -> None:
        if text.strip() and size:
            scale = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3])  # vertical scale of text space
            self.runs.append((round(float(size) * (scale or 1.0), 1), text))

    def title(self) -> str | None:
        chars: dict[float, int] = {}
        for size, text in self.runs:
            chars[size] = chars.get(size, 0) + len(text.strip())
        if len(chars) < 2:
            return None
        body = max(chars, key=chars.get)
        largest = max(chars)
        if largest < LARGE * body:
            return None
        title = " ".join(" ".join(text for size, text in self.runs if size == largest).split())
        return title if 3 <= len(title) <= MAX_TITLE else None
