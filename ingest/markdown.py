"""Markdown: ATX and setext headings become structure; inline markup is reduced to its text."""

from __future__ import annotations

import re

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .textfile import decode

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text)


def load_markdown(data: bytes, name: str) -> LoadedDocument:
    text = decode(data)
    title = published = None
    front = _FRONT.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            value = value.strip().strip("'\"")
            if key.strip().lower() == "title":
                title = value or None
            elif key.strip().lower() in ("date", "published"):
                published = value or None
        text = text[front.end():]
    blocks: list[Block] = []
    para: list[str] = []
    in_fence = False

    def flush():
        if para:
            body = "\n".join(para).strip()
            if body:
                blocks.append(Block(body, "para"))
            para.clear()

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            para.append(line)
            continue
        if in_fence:
            para.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            blocks.append(Block(inline(atx.group(2)), "heading", len(atx.group(1))))
        elif _SETEXT.match(line) and len(para) == 1 and line.strip():
            heading = para.pop()
            flush()
            blocks.append(Block(inline(heading.strip()), "heading", 1 if line.strip()[0] == "=" else 2))
        elif not line.strip():
            flush()
        else:
            para.append(inline(line.rstrip()))
    flush()
    if not any(b.text.strip() for b in blocks):
        raise LoadError("empty file: no text")
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return LoadedDocument(blocks=blocks, title=title, published=published, mime="text/markdown")
