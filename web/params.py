"""Reading search and listing parameters from a request, the same way for pages and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from kb.errors import BadRequest
from kb.models import Filters
from kb.query import normalize
from kb.search import MAX_K, MODES

ISO_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
SEARCH_PARAMS = {"q", "k", "site", "type", "year", "tag", "mode", "page", "offset", "from", "to"}


@dataclass
class SearchRequest:
    q: str
    k: int
    mode: str
    page: int
    filters: Filters

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.k


def _int(args, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def search_request(args, visibility: tuple[str, ...], default_k: int = 10, strict: bool = True) -> SearchRequest:
    """Parse `?q=&k=&site=&type=&year=&tag=&mode=&page=`; unknown parameters are an error when strict."""
    unknown = set(args) - SEARCH_PARAMS
    if strict and unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}; known: {', '.join(sorted(SEARCH_PARAMS))}")
    mode = args.get("mode") or "hybrid"
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}")
    years = []
    for raw in args.getlist("year"):
        if raw:
            if not raw.isdigit() or len(raw) != 4:
                raise BadRequest(f"year must be four digits, not {raw!r}")
            years.append(int(raw))
    k = _int(args, "k", default_k, 1, MAX_K)
    page = _int(args, "page", 1, 1, 1000)
    if args.get("offset"):
        page = _int(args, "offset", 0, 0, 10_000) // k + 1
    dates = {}
    for name in ("from", "to"):
        raw = args.get(name) or ""
        if raw and not ISO_DATE.match(raw):
            raise BadRequest(f"{name} must be a date like 2021-01-31, not {raw!r}")
        dates[name] = raw or None
    filters = Filters(
        site=[v for v in args.getlist("site") if v], doc_type=[v for v in args.getlist("type") if v],
        tag=[v for v in args.getlist("tag") if v], year=years,
        date_from=dates["from"], date_to=dates["to"], visibility=visibility)
    return SearchRequest(q=normalize(args.get("q") or ""), k=k, mode=mode, page=page, filters=filters)


def local_path(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default`: never an open redirect. Browsers
    read a backslash as a slash, so "/\\evil.example" is refused as "//evil.example" is."""
    target = target or ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target[1:2] in ("/", "\\") \
            or any(ch in target for ch in "\\\r\n\t"):
        return default
    return target
