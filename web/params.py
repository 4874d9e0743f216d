"""Reading search and listing parameters from a request, the same way for pages and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kb.errors import BadRequest, EmptyQuery
from kb.models import Filters
from kb.query import normalize
from kb.search import GROUPS, MAX_K, MODES

DATE = r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"  # YYYY, YYYY-MM or YYYY-MM-DD, ASCII digits
ISO_DATE = re.compile(DATE)  # whole values only (fullmatch): "2021\n" is not a date
WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII digits only: int() would also take "1_0", " 5" and "٥"
FILTERS = ("site", "type", "year", "tag")
SEARCH_PARAMS = {"q", "k", "mode", "group", "page", "offset", "from", "to", *FILTERS}
# Bounds on a query string. A page's own links carry at most 4 filters x MAX_VALUES plus q, k, mode,
# page, from and to (86 values); the first 1,000 characters of a query are searched (kb.query), so
# 4,000 leaves room for a pasted paragraph; no site, type or tag a curator can save is near 200
# characters. Without them 30,000 repeated tags took 6 s and came back as 14 MB.
MAX_PARAMETERS = 100
MAX_VALUES = 20
MAX_Q_CHARS = 4000
MAX_VALUE_CHARS = 200
PAGE_RANGE = (1, 1000)
OFFSET_RANGE = (0, 10_000)  # of a search; no candidate pool is near that deep
LIMIT_RANGE = (1, 1000)  # documents a listing gives at once
LISTING_OFFSET_RANGE = (0, 1_000_000)
SIMILAR_K_RANGE = (1, 50)


@dataclass
class SearchRequest:
    q: str
    k: int
    mode: str
    page: int
    filters: Filters
    group: str = "passage"
    args: dict[str, list[str]] = field(default_factory=dict)  # the known parameters, for links to this search

    @property
    def offset(self) -> int:
        """Where this page starts; a page past OFFSET_RANGE (empty whatever the query) starts there."""
        return min((self.page - 1) * self.k, OFFSET_RANGE[1])


def shown(text: str, limit: int = 40) -> str:
    """A caller's text quoted in a message, cut short: an error never echoes a whole parameter."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _named(name: str) -> str:
    return name if name.isidentifier() and len(name) <= 40 else shown(name)


def check_query_string(args) -> None:
    """Every request: no more parameters than any page or API call needs, none repeated more than a
    filter may be, and no value longer than a query; the q of any route at most MAX_Q_CHARS."""
    total = 0
    for name, values in args.lists():
        if len(values) > MAX_VALUES:
            raise BadRequest(f"{_named(name)} is given {len(values):,} times; at most {MAX_VALUES} values of one "
                             "parameter are accepted")
        total += len(values)
        longest = max(map(len, values), default=0)
        if longest > MAX_Q_CHARS:
            raise BadRequest(f"{_named(name)} is {longest:,} characters long; at most {MAX_Q_CHARS:,} characters "
                             "are accepted")
    if total > MAX_PARAMETERS:
        raise BadRequest(f"the address has {total:,} parameters; at most {MAX_PARAMETERS} parameters are accepted")


def _int(args, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    if not WHOLE_NUMBER.fullmatch(raw):
        raise BadRequest(f"{name} must be a whole number, not {shown(raw)}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def filter_values(args, name: str) -> list[str]:
    """The non-empty values of one filter parameter, each once, in the order given."""
    values = list(dict.fromkeys(v for v in args.getlist(name) if v))
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{name} has {len(values)} values; at most {MAX_VALUES} values of one parameter are accepted")
    for value in values:
        if len(value) > MAX_VALUE_CHARS:
            raise BadRequest(f"a {name} value is {len(value):,} characters long; at most {MAX_VALUE_CHARS} "
                             "characters are accepted")
    if name == "year":
        for value in values:
            if not (len(value) == 4 and value.isascii() and value.isdigit()):
                raise BadRequest(f"year must be four digits, not {shown(value)}")
    return values


def filters_from(args, visibility: tuple[str, ...], **dates) -> Filters:
    """Filters from `site`, `type`, `year` and `tag` (each may repeat), for pages and the API alike."""
    return Filters(site=filter_values(args, "site"), doc_type=filter_values(args, "type"),
                   tag=filter_values(args, "tag"), year=[int(y) for y in filter_values(args, "year")],
                   visibility=visibility, **dates)


def search_request(args, visibility: tuple[str, ...], default_k: int = 10, strict: bool = True,
                   default_group: str = "passage") -> SearchRequest:
    """Parse `?q=&k=&site=&type=&year=&tag=&mode=&group=&page=`; unknown parameters are an error when strict."""
    unknown = set(args) - SEARCH_PARAMS
    if strict and unknown:
        raise BadRequest(f"unknown parameter {shown(sorted(unknown)[0])}; known: {', '.join(sorted(SEARCH_PARAMS))}")
    mode = args.get("mode") or "hybrid"
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}")
    group = args.get("group") or default_group
    if group not in GROUPS:
        raise BadRequest(f"group must be one of {', '.join(GROUPS)}")
    k = _int(args, "k", default_k, 1, MAX_K)
    page = _int(args, "page", 1, *PAGE_RANGE)
    if args.get("offset"):
        page = _int(args, "offset", 0, *OFFSET_RANGE) // k + 1
    dates = {}
    for name in ("from", "to"):
        raw = args.get(name) or ""
        if raw and not ISO_DATE.fullmatch(raw):
            raise BadRequest(f"{name} must be a date like 2021-01-31, not {shown(raw)}")
        dates[name] = raw or None
    filters = filters_from(args, visibility, date_from=dates["from"], date_to=dates["to"])
    q = normalize(args.get("q") or "")
    # links to this search carry the known parameters only, each filter value once (page and offset
    # are the links' own business): never whatever else the address held
    given = {"q": q, "k": args.get("k"), "mode": args.get("mode"), "group": args.get("group"),
             "from": dates["from"], "to": dates["to"]}
    links = {name: [value] for name, value in given.items() if value}
    links.update({name: values for name in FILTERS if (values := filter_values(args, name))})
    return SearchRequest(q=q, k=k, mode=mode, page=page, filters=filters, group=group, args=links)


def query_text(args) -> str:
    """The API's q, normalized: missing or empty is a 400; text with nothing to search in it
    (spaces, control characters) a 422, a rule no JSON Schema keyword states."""
    raw = args.get("q") or ""
    if not raw:
        raise BadRequest("q is required")
    q = normalize(raw)
    if not q:
        raise EmptyQuery("the query is empty")
    return q


def local_path(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default`: never an open redirect. Browsers
    read a backslash as a slash, so "/\\evil.example" is refused as "//evil.example" is."""
    target = target or ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target[1:2] in ("/", "\\") \
            or any(ch in target for ch in "\\\r\n\t"):
        return default
    return target
