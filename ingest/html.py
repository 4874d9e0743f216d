"""HTML: the page's main content only, headings kept as structure, site chrome dropped."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Comment
from bs4.exceptions import ParserRejectedMarkup

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .dates import normalize_date
from .textfile import decode

DROP_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas",
             "nav", "header", "footer", "aside", "form", "button", "input", "select", "textarea",
             "dialog", "menu"]
CHROME = re.compile(
    r"cookie|consent|gdpr|share|sharing|social|related|recommended|advert|\bads?\b|sponsor|promo|"
    r"newsletter|subscribe|signup|sign-up|breadcrumb|sidebar|\bjobs?\b|job-|vacanc|recruit|comment|"
    r"popup|modal|skip-link|site-nav|navbar|masthead|banner|widget|tag-?cloud|pagination", re.I)
CHROME_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alert"}
BLOCK_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "pre", "td", "th", "dt",
              "dd", "figcaption", "caption", "address"]
DATE_META = ["article:published_time", "og:published_time", "date", "dc.date", "dc.date.issued",
             "dcterms.created", "dcterms.date", "publish-date", "pubdate", "sailthru.date"]


def load_html(data: bytes, name: str) -> LoadedDocument:
    try:
        soup = BeautifulSoup(decode(data), "html.parser")
    except ParserRejectedMarkup:
        raise LoadError("malformed HTML: the parser rejected the markup") from None
    title = _title(soup)
    published = _date(soup)
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_is_chrome):
        tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup.body or soup
    blocks = _blocks(root)
    if not blocks:
        raise LoadError("no text found in the page's main content")
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading"), None)
    return LoadedDocument(blocks=blocks, title=title, published=published, mime="text/html")


def _is_chrome(tag) -> bool:
    if tag.name in ("html", "body", "main", "article") or tag.attrs is None:
        return False
    if tag.get("role") in CHROME_ROLES or tag.get("aria-hidden") == "true" or tag.has_attr("hidden"):
        return True
    marker = " ".join([*tag.get("class", []), tag.get("id", "") or "", tag.get("aria-label", "") or ""])
    return bool(marker.strip()) and bool(CHROME.search(marker))


def _blocks(root) -> list[Block]:
    found = root.find_all(BLOCK_TAGS)
    chosen = set(map(id, found))
    blocks = []
    for tag in found:
        if not tag.name.startswith("h") or tag.name == "th":
            if any(id(p) in chosen for p in tag.parents):
                continue  # text already taken with an enclosing block
        text = " ".join(tag.get_text(" ").split())
        if not text:
            continue
        if re.fullmatch(r"h[1-6]", tag.name):
            blocks.append(Block(text, "heading", int(tag.name[1])))
        else:
            blocks.append(Block(text, "para"))
    if not blocks:
        text = root.get_text("\n")
        blocks = [Block(" ".join(line.split()), "para") for line in text.split("\n") if line.strip()]
    return blocks


def _title(soup) -> str | None:
    for attrs in ({"property": "og:title"}, {"name": "og:title"}, {"name": "twitter:title"}):
        tag = soup.find("meta", attrs=attrs)
        if tag and (tag.get("content") or "").strip():
            return " ".join(tag["content"].split())
    if soup.title and soup.title.get_text(strip=True):
        return " ".join(soup.title.get_text().split())
    h1 = soup.find("h1")
    return " ".join(h1.get_text(" ").split()) if h1 and h1.get_text(strip=True) else None


def _date(soup) -> str | None:
    for tag in soup.find_all("meta"):
        key = (tag.get("property") or tag.get("name") or tag.get("itemprop") or "").lower()
        if key in DATE_META or key == "datepublished":
            value = normalize_date(tag.get("content") or "")
            if value:
                return value
    time_tag = soup.find("time", attrs={"datetime": True})
    return normalize_date(time_tag["datetime"]) if time_tag else None
