"""Atom feeds (RFC 4287), built from plain values. Pure: no request, database or clock.

Ids are tag URIs (RFC 4151) under the site's host name, so a feed reader keeps recognising an
entry when its passage comes back updated, and never mistakes one site's passage for another's.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

ATOM = "http://www.w3.org/2005/Atom"
MIME = "application/atom+xml"
# characters XML 1.0 cannot hold at all (a PDF's form feeds, stray NULs): dropped, or the feed would not parse
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TAGS = re.compile(r"</?(mark|strong)>")


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    updated: str  # RFC 3339, as kb stores times
    link: str
    summary: str  # plain text
    author: str
    published: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Feed:
    id: str
    title: str
    updated: str
    self_link: str
    author: str
    alternate: str | None = None
    subtitle: str | None = None


def tag_uri(base_url: str, day: str, specific: str) -> str:
    """`tag:HOST,YYYY-MM-DD:specific`: `day` a date the site had its name (its first 10 characters are used)."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{day[:10]}:{specific}"


def plain(snippet_html: str) -> str:
    """A snippet's text without its highlighting markup, unescaped (kb.snippet adds only <mark> and <strong>)."""
    return html.unescape(_TAGS.sub("", snippet_html))


def atom(feed: Feed, entries: list[Entry]) -> bytes:
    """The feed document, UTF-8 with an XML declaration."""
    root = ET.Element("feed", xmlns=ATOM)
    _text(root, "id", feed.id)
    _text(root, "title", feed.title)
    if feed.subtitle:
        _text(root, "subtitle", feed.subtitle)
    _text(root, "updated", feed.updated)
    ET.SubElement(root, "link", rel="self", type=MIME, href=xml_safe(feed.self_link))
    if feed.alternate:
        ET.SubElement(root, "link", rel="alternate", type="text/html", href=xml_safe(feed.alternate))
    _author(root, feed.author)
    _text(root, "generator", "kb")
    for entry in entries:
        item = ET.SubElement(root, "entry")
        _text(item, "id", entry.id)
        _text(item, "title", entry.title)
        _text(item, "updated", entry.updated)
        if entry.published:
            _text(item, "published", entry.published)
        ET.SubElement(item, "link", rel="alternate", type="text/html", href=xml_safe(entry.link))
        _author(item, entry.author)
        if entry.category:
            ET.SubElement(item, "category", term=xml_safe(entry.category))
        _text(item, "summary", entry.summary).set("type", "text")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def xml_safe(text: str) -> str:
    """The text without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", text)


def _text(parent: ET.Element, name: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, name)
    element.text = xml_safe(value)
    return element


def _author(parent: ET.Element, name: str) -> None:
    _text(ET.SubElement(parent, "author"), "name", name)
