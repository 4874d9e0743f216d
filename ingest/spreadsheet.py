"""Spreadsheets: Excel .xlsx (openpyxl, read-only) and CSV (the csv module, its dialect sniffed). A
section per sheet; each row a block of "column: value" lines named by the header row. Bounded: past
MAX_ROWS rows or MAX_CELLS cells the rest is not read, and the document says so in a warning."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import warnings
from typing import Iterable, Iterator

from kb.errors import LoadError
from kb.models import Block, LoadedDocument

from .archive import open_zip, words
from .textfile import clean, decode_only

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WHAT = "Excel workbook"
# A row makes a passage of its own or shares one with its neighbours: 20,000 rows is a year of daily
# figures for 50 sites, about 4,000 passages to embed (a minute or two on two cores). Past it the
# rest of a file is left out, with a warning, rather than the whole file refused.
MAX_ROWS = 20_000
MAX_CELLS = 200_000  # non-empty cells, all sheets together
MAX_COLUMNS = 1_000  # cells right of this in a row are not read
SNIFF_CHARS = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class RowBudget:
    """Rows and cells left to read, shared by a workbook's sheets; what was cut, for the warning."""

    def __init__(self):
        self.rows, self.cells, self.cut = MAX_ROWS, MAX_CELLS, ""

    def take(self, values: list[str]) -> bool:
        filled = sum(1 for v in values if v)
        if self.rows <= 0 or self.cells < filled:
            self.cut = (f"only the first {MAX_ROWS:,} rows were read" if self.rows <= 0
                        else f"only the first {MAX_CELLS:,} cells were read")
            return False
        self.rows -= 1
        self.cells -= filled
        return True


def rows_blocks(rows: Iterable[tuple[int, list[str]]], budget: RowBudget) -> list[Block]:
    """One block per non-empty row (rows come numbered): "Row N:" then a "column: value" line per filled cell, columns
    named by the header row (the first non-empty row, when every cell of it is filled with words,
    not numbers), else "Column 1", "Column 2"... The "Row N:" line keeps a row from reading as the
    document's title."""
    blocks: list[Block] = []
    header: list[str] | None = None
    for number, values in rows:
        values = [words(_CONTROL.sub("", v)) for v in values[:MAX_COLUMNS]]
        if not any(values):
            continue
        if not budget.take(values):
            break
        if header is None:
            if all(values) and not any(_numeric(v) for v in values):
                header = values
                continue
            header = []
        names = [header[i] if i < len(header) and header[i] else f"Column {i + 1}" for i in range(len(values))]
        lines = [f"{name}: {value}" for name, value in zip(names, values) if value]
        blocks.append(Block("\n".join([f"Row {number}:", *lines]), "para"))
    if header and not blocks:  # a first row alone is the table's text, not its column names
        blocks.append(Block(" | ".join(header), "para"))
    return blocks


def _numeric(value: str) -> bool:
    try:
        float(value.replace(",", "").replace("£", "").rstrip("%"))
        return True
    except ValueError:
        return False


def load_csv(data: bytes, name: str) -> LoadedDocument:
    text = decode_only(data)  # cleaned a cell at a time: a million rows are not all read
    sample = clean(text[:SNIFF_CHARS])  # refuses binary data
    if not sample.strip():
        raise LoadError("empty file: no text")
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if name.lower().endswith(".tsv") else csv.excel
    budget = RowBudget()
    try:
        blocks = rows_blocks(enumerate(csv.reader(io.StringIO(text, newline=""), dialect), start=1), budget)
    except csv.Error as exc:
        raise LoadError(f"malformed CSV: {exc}") from None
    if not blocks:
        raise LoadError("empty file: no values in any row")
    return LoadedDocument(blocks=blocks, mime="text/csv", warnings=[budget.cut] if budget.cut else [])


def load_xlsx(data: bytes, name: str) -> LoadedDocument:
    open_zip(data, WHAT, "xl/workbook.xml")
    import openpyxl

    budget = RowBudget()
    blocks: list[Block] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl's notes on extensions it does not read
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                for sheet in book.worksheets:
                    sheet.reset_dimensions()  # a sheet's declared size may be made up: read what it holds
                    rows = blocks_of_sheet(sheet.title, enumerate(_cells(sheet.iter_rows(values_only=True)), start=1),
                                           budget)
                    blocks.extend(rows)
                    if budget.cut:
                        break
                title = words(book.properties.title) or None
            finally:
                book.close()
    except LoadError:
        raise
    except Exception as exc:  # openpyxl surfaces zip, XML, key and value errors alike
        raise LoadError(f"corrupt {WHAT}: {str(exc)[:200]}") from None
    if not any(b.kind == "para" for b in blocks):
        raise LoadError("empty workbook: no values in any sheet")
    return LoadedDocument(blocks=blocks, title=title, mime=XLSX_MIME, warnings=[budget.cut] if budget.cut else [])


def blocks_of_sheet(title: str, rows: Iterable[tuple[int, list[str]]], budget: RowBudget) -> list[Block]:
    """A sheet's heading (its name) and its rows; nothing for an empty sheet."""
    body = rows_blocks(rows, budget)
    return [Block(words(title) or "Sheet", "heading", 1), *body] if body else []


def _cells(rows: Iterable[tuple]) -> Iterator[list[str]]:
    for row in rows:
        yield [cell_text(value) for value in row[:MAX_COLUMNS]]


def cell_text(value) -> str:
    """A cell's value as people read it: whole numbers without ".0", dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ", "minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)
