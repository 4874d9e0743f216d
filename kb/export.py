"""Exports of result lists and across-sites views as CSV and Markdown, with citations. Pure.

Every row carries its citation: title, site, date, page and a link back to the passage.
"""

from __future__ import annotations

import csv
import io
import re

from .across import AcrossResult
from .models import Hit

COLUMNS = ["rank", "site", "title", "doc_type", "published", "page", "heading", "passage", "link"]
NOTHING = "(nothing on this question)"


def _clean(text) -> str:
    return " ".join(str(text if text is not None else "").split())


def passage_link(base_url: str, hit: Hit) -> str:
    """The passage on its document's page, on the site at `base_url`."""
    return f"{base_url.rstrip('/')}/doc/{hit.doc_id}?hl={hit.ordinal}#chunk-{hit.ordinal}"


def hit_row(rank: int, hit: Hit, base_url: str, site: str | None = None) -> dict:
    return {"rank": str(rank), "site": _clean(site or hit.site), "title": _clean(hit.title),
            "doc_type": _clean(hit.doc_type), "published": _clean(hit.published),
            "page": _clean(hit.page), "heading": _clean(hit.heading), "passage": _clean(hit.text),
            "link": passage_link(base_url, hit)}


def hit_rows(hits: list[Hit], base_url: str, start: int = 1) -> list[dict]:
    return [hit_row(start + n, h, base_url) for n, h in enumerate(hits)]


def across_rows(result: AcrossResult, base_url: str) -> list[dict]:
    rows = []
    for group in result.groups:
        if not group.hits:
            rows.append({**{c: "" for c in COLUMNS}, "site": group.site, "passage": NOTHING})
        rows.extend(hit_row(n, h, base_url, group.site) for n, h in enumerate(group.hits, 1))
    return rows


def _cell(value: str) -> str:
    """Spreadsheets run cells that start like a formula: such cells get a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def to_csv(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in columns})
    return out.getvalue()


def parse_csv(text: str) -> list[dict]:
    """Rows back from `to_csv`, with the formula guard removed."""
    def unguard(value: str) -> str:
        return value[1:] if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@") else value

    return [{k: unguard(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))]


def _escaped(value: str) -> str:
    """Backslash-escaped: a cell's text never becomes markup (raw HTML, links, images) or a new column."""
    return re.sub(r"([\\|<>\[\]`])", r"\\\1", value)


def to_markdown(rows: list[dict], title: str, columns: list[str] = COLUMNS, intro: list[str] = ()) -> str:
    """A table under a title; `intro` lines (plain text, escaped) go between them, a paragraph each."""
    lines = [f"# {_escaped(_clean(title))}", ""]
    for line in intro:
        lines += [_escaped(_clean(line)), ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_escaped(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse_markdown(text: str, columns: list[str] = COLUMNS) -> list[dict]:
    """Rows back from `to_markdown` (for tests and round trips)."""
    rows = []
    header = "| " + " | ".join(columns) + " |"
    table = False
    for line in text.splitlines():
        if line == header:
            table = True
        if not table or not line.startswith("| ") or line == header:
            continue
        cells, cell, i = [], "", 2
        while i < len(line):
            ch = line[i]
            if ch == "\\" and i + 1 < len(line):
                cell += line[i + 1]
                i += 2
                continue
            if ch == "|":
                cells.append(cell[:-1] if cell.endswith(" ") else cell)
                cell, i = "", i + 2
                continue
            cell += ch
            i += 1
        rows.append(dict(zip(columns, cells)))
    return rows
