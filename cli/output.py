"""How the `kb` command shows things to a person: search results wrapped to the terminal, the
ingest progress bar, stats lines, and a reader that leaves early. Formatting is pure; only the
progress bar and `reader_gone` touch the streams."""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import sys
import textwrap
import threading

from kb.models import Hit, ItemOutcome, SearchResult

INDENT = "    "  # everything under a result's number: a list number in a snippet never starts a line at column 0
NBSP = "\xa0"  # textwrap breaks lines at ASCII whitespace only
SIGPIPE_STATUS = 141  # 128 + SIGPIPE (13): what a shell reports for `cat` when its reader leaves


def width() -> int:
    """Columns to wrap to: the terminal's, or 80 when standard output is not a terminal."""
    return max(40, shutil.get_terminal_size().columns) if sys.stdout.isatty() else 80


def plain(snippet: str) -> str:
    """A snippet as one line of text: highlight tags gone, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"</?(mark|strong)>", "", snippet)).split())


def search_lines(result: SearchResult, columns: int = 80) -> list[str]:
    """The text `kb search` prints: a line of counts, then each result numbered "[1]" at column 0
    with its title, where it is (site, type, date, page, heading) and its snippet indented beneath."""
    if not result.hits:
        if not result.nearest:
            return ["nothing matches"]
        return ["nothing matches; nearest passages:", "", *_numbered(result.nearest, columns)]
    return [_counts(result), "", *_numbered(result.hits, columns)]


def _counts(result: SearchResult) -> str:
    """How many match, said as the search knows it: "at least" when the candidate pool ran out."""
    some = "" if result.complete else "at least "
    passages, documents = _plural(result.passages, "passage"), _plural(result.documents, "document")
    if result.group == "document":
        line = f"{some}{documents} ({some}{passages}) match"
    else:
        line = f"{some}{passages} in {some}{documents} match"
    shown = len(result.hits)
    if shown < result.total or not result.complete:
        line += f"; the best {shown} shown"
    return f"{line} ({result.took_ms:.0f} ms)"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _numbered(hits: list[Hit], columns: int) -> list[str]:
    out: list[str] = []
    for n, hit in enumerate(hits, 1):
        if n > 1:
            out.append("")
        out.extend(hit_lines(n, hit, columns))
    return out


def hit_lines(n: int, hit: Hit, columns: int) -> list[str]:
    """One result: "[n] title (doc, score)" at column 0, the rest indented and wrapped to `columns`."""
    where = " · ".join(str(x) for x in (hit.site, hit.doc_type, hit.published,
                                         f"p. {hit.page}" if hit.page else None, hit.heading) if x)
    tail = f"(doc {hit.doc_id}, score {hit.score:.3f})".replace(" ", NBSP)  # wrapped as one word
    lines = [line.replace(NBSP, " ") for line in _wrap(f"[{n}] {' '.join(hit.title.split())}  {tail}", columns, "", INDENT)]
    for text in (where, plain(hit.snippet)):
        if text:
            lines += _wrap(text, columns, INDENT, INDENT)
    if hit.also_in:
        lines += _wrap("also in: " + "; ".join(a["title"] for a in hit.also_in), columns, INDENT, INDENT)
    for more in hit.more:  # grouped by document: its next passages
        place = " · ".join(str(x) for x in (f"p. {more['page']}" if more.get("page") else None, more.get("heading")) if x)
        lines += _wrap(f"+ {place + ': ' if place else ''}{plain(more['snippet'])}", columns, INDENT, INDENT + "  ")
    return lines


def _wrap(text: str, columns: int, first: str, rest: str) -> list[str]:
    # long words (URLs, paths) stay whole rather than broken where a reader would copy them
    return textwrap.wrap(text, columns, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


UNSET_LABELS = {"type": "(no type)", "site": "(no site)", "year": "(undated)"}


def stats_lines(stats: dict) -> list[str]:
    """`kb stats` as text: totals, then documents by type, site and year, those without one last."""
    index = stats["index"]
    lines = [f"{stats['documents']} documents, {stats['chunks']} chunks; index {index['kind']} "
             f"({index['vectors']} vectors, dim {index['dim']}); model {stats['model']}"]
    for name in ("type", "site", "year"):
        parts = [f"{k} {v}" for k, v in stats[f"by_{name}"].items()]
        if stats["without"][name]:
            parts.append(f"{UNSET_LABELS[name]} {stats['without'][name]}")
        lines.append(f"by {name}: " + (", ".join(parts) or "-"))
    return lines


def analytics_lines(report) -> list[str]:
    """`kb analytics` as text: totals, the queries that found nothing or only weak matches, then
    each week's most searched, each query with the documents opened from it and its feedback."""
    lines = [f"{_n(report.searches, 'search', 'searches')} of {_n(report.distinct, 'query', 'queries')} from "
             f"{report.since} to {report.until} ({_n(report.days, 'day', 'days')}, UTC); who searched is never recorded",
             "", "found nothing or only weak matches:"]
    lines += [f"  {_query_line(s)}; nothing {s.nothing}, weak {s.weak}; last {s.last}" for s in report.gaps] or ["  none"]
    for week in report.weeks:
        lines += ["", f"week {week.week} (from {week.starts}): {_n(week.searches, 'search', 'searches')}"]
        lines += [f"  {_query_line(s)}" for s in week.queries]
    return lines


def _n(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _query_line(s) -> str:
    """One query's counts: searches, opened documents, feedback."""
    line = f"{s.searches:>4} × {s.query!r}"
    if s.opened:
        line += "; opened " + ", ".join(f"{o.title or f'document {o.doc_id}'!r} ({o.opens})" for o in s.opened)
    if s.marks:
        line += f"; feedback {s.helpful} helpful, {s.not_helpful} not"
    return line


class IngestProgress:
    """The progress bar `kb ingest` shows on a terminal: files done out of the files found (counted
    before any is read), "loading the model…" while the embedder loads one, and a clock that keeps
    running while a batch is embedded. Failed and skipped files are written above the bar, warnings too."""

    def __init__(self, total: int, embedder, stream=None, interval: float = 0.25):
        from tqdm import tqdm

        self.embedder = embedder
        self.stream = stream or sys.stderr
        self.bar = tqdm(total=total, desc="ingesting", unit=" files", file=self.stream, dynamic_ncols=True)
        self.passages = 0
        self._lock = threading.Lock()
        self._log = _BarLog(self)
        logging.getLogger("kb").addHandler(self._log)  # "exporting the model…" goes above the bar, not through it
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(interval,), name="kb-progress", daemon=True)
        self._ticker.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.show()

    def show(self) -> None:
        """Redraw: the phase (loading the model, or ingesting) and the running clock."""
        phase = "loading the model…" if getattr(self.embedder, "loading", False) else "ingesting"
        with self._lock:
            if self.bar.desc != phase:
                self.bar.set_description_str(phase, refresh=False)
            self.bar.refresh()

    def notify(self, outcome: ItemOutcome) -> None:
        with self._lock:
            if outcome.status == "pruned":  # not one of the files found: reported in the summary
                return
            if outcome.status in ("failed", "skipped"):
                self.write(f"{outcome.status:<8} {outcome.name}: {outcome.reason}")
            self.bar.update(1)

    def write(self, line: str) -> None:
        """A line above the bar, on the bar's stream."""
        self.bar.write(line, file=self.stream)

    def embedded(self, count: int) -> None:
        with self._lock:
            self.passages += count
            self.bar.set_postfix_str(f"{self.passages:,} passages embedded", refresh=False)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()
        logging.getLogger("kb").removeHandler(self._log)
        self.show()
        self.bar.close()


class _BarLog(logging.Handler):
    def __init__(self, progress: IngestProgress):
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.write(self.format(record))


def reader_gone() -> int:
    """Standard output's reader has left (`kb docs --json | head -1`): end quietly with status 141,
    as a process that SIGPIPE ends would (`cat` in the same place), standard output pointed at
    /dev/null so that Python's own flush at exit has nothing left to fail on (the recipe in
    Python's signal module docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing will flush to the pipe
        pass
    return SIGPIPE_STATUS
