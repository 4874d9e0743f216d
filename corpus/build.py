#!/usr/bin/env python3
"""Build the binary documents of the sample corpus from Markdown sources.

Sources live in corpus/src/*.md; outputs are written to corpus/docs/.

    .venv/bin/python corpus/build.py

Only a small Markdown subset is understood: '#', '##', '###' headings,
'- ' bullets, '1. ' numbered items, '> ' quote lines, '**bold**' spans,
blank-line separated paragraphs and a '<!-- pagebreak -->' marker (PDF only).
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from docx import Document
from fpdf import FPDF

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUT = HERE / "docs"

# source file -> (output file, title, published date)
PDF_JOBS = [
    ("learning-report-plymouth.md", "learning-report-plymouth.pdf",
     "Volunteers, small groups and trust: Plymouth phase 1 learning report",
     "2021-11-26"),
]
DOCX_JOBS = [
    ("profile-gloucestershire.md", "profile-gloucestershire.docx",
     "Area profile: Gloucestershire", "2021-01-14"),
]
AUTHOR = "kb sample corpus"

# ---------------------------------------------------------------- parsing

PAGEBREAK = "<!-- pagebreak -->"


def parse(text: str):
    """Yield blocks: (kind, payload). kinds: h1,h2,h3,p,bullet,number,quote,pagebreak."""
    blocks = []
    para: list[str] = []

    def flush():
        if para:
            blocks.append(("p", " ".join(s.strip() for s in para)))
            para.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        s = line.strip()
        if not s:
            flush()
            continue
        if s == PAGEBREAK:
            flush()
            blocks.append(("pagebreak", ""))
            continue
        m = re.match(r"^(#{1,3})\s+(.*)$", s)
        if m:
            flush()
            blocks.append((f"h{len(m.group(1))}", m.group(2).strip()))
            continue
        if s.startswith("- "):
            flush()
            blocks.append(("bullet", s[2:].strip()))
            continue
        m = re.match(r"^(\d+)\.\s+(.*)$", s)
        if m:
            flush()
            blocks.append(("number", (m.group(1), m.group(2).strip())))
            continue
        if s.startswith(">"):
            flush()
            blocks.append(("quote", s.lstrip(">").strip()))
            continue
        para.append(s)
    flush()
    return blocks


def plain(text: str) -> str:
    """Drop Markdown emphasis markers."""
    return text.replace("**", "")


# ---------------------------------------------------------------- PDF

# Core PDF fonts only cover latin-1: map typographic characters to ASCII.
_PDF_REPLACE = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u2022": "-", "\u00a0": " ", "\u2192": "->",
}


def latin1(text: str) -> str:
    for k, v in _PDF_REPLACE.items():
        text = text.replace(k, v)
    # '--' would be read as underline by fpdf2's markdown mode
    text = text.replace("--", "-")
    return text.encode("latin-1", "replace").decode("latin-1")


class ReportPDF(FPDF):
    doc_title = ""

    def header(self):
        if self.page_no() > 1:
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, latin1(self.doc_title), align="R")
            self.ln(8)
            self.set_text_color(0, 0, 0)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def build_pdf(src: Path, out: Path, title: str, published: str) -> None:
    pdf = ReportPDF(format="A4")
    pdf.doc_title = title
    pdf.alias_nb_pages()
    pdf.set_title(latin1(title))
    pdf.set_author(AUTHOR)
    pdf.set_subject("Healthy Communities Together - illustrative learning report")
    pdf.set_creation_date(dt.datetime.fromisoformat(published + "T09:00:00+00:00"))
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    sizes = {"h1": 18, "h2": 14, "h3": 12}
    levels = {"h1": 0, "h2": 1, "h3": 2}
    for kind, payload in parse(src.read_text(encoding="utf-8")):
        if kind == "pagebreak":
            pdf.add_page()
        elif kind in sizes:
            text = latin1(plain(payload))
            pdf.ln(3 if kind != "h1" else 0)
            pdf.start_section(text, level=levels[kind])
            pdf.set_font("Helvetica", "B", sizes[kind])
            pdf.multi_cell(width, sizes[kind] * 0.5, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif kind == "quote":
            pdf.set_font("Helvetica", "B", 10)
            pdf.set_fill_color(255, 243, 205)
            pdf.multi_cell(width, 5.5, latin1(plain(payload)), border=1, fill=True,
                           padding=3, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
        elif kind in ("bullet", "number"):
            marker, text = ("-", payload) if kind == "bullet" else (payload[0] + ".", payload[1])
            pdf.set_font("Helvetica", "", 11)
            pdf.set_x(pdf.l_margin + 4)
            pdf.cell(6, 5.5, marker)
            pdf.multi_cell(width - 10, 5.5, latin1(text), markdown=True,
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        else:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(width, 5.5, latin1(payload), markdown=True,
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(out))


# ---------------------------------------------------------------- DOCX


def add_runs(par, text: str) -> None:
    """Add text to a python-docx paragraph, honouring **bold** spans."""
    for i, part in enumerate(text.split("**")):
        if part:
            par.add_run(part).bold = (i % 2 == 1)


def build_docx(src: Path, out: Path, title: str, published: str) -> None:
    doc = Document()
    props = doc.core_properties
    props.title = title
    props.author = AUTHOR
    props.subject = "Healthy Communities Together - area profile"
    stamp = dt.datetime.fromisoformat(published + "T09:00:00")
    props.created = stamp
    props.modified = stamp
    props.last_modified_by = AUTHOR

    for kind, payload in parse(src.read_text(encoding="utf-8")):
        if kind == "pagebreak":
            doc.add_page_break()
        elif kind in ("h1", "h2", "h3"):
            doc.add_heading(plain(payload), level=int(kind[1]))
        elif kind == "bullet":
            add_runs(doc.add_paragraph(style="List Bullet"), payload)
        elif kind == "number":
            add_runs(doc.add_paragraph(style="List Number"), payload[1])
        elif kind == "quote":
            add_runs(doc.add_paragraph(style="Intense Quote"), payload)
        else:
            add_runs(doc.add_paragraph(), payload)
    doc.save(str(out))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for src, out, title, published in PDF_JOBS:
        build_pdf(SRC / src, OUT / out, title, published)
        print("built", (OUT / out).relative_to(HERE.parent))
    for src, out, title, published in DOCX_JOBS:
        build_docx(SRC / src, OUT / out, title, published)
        print("built", (OUT / out).relative_to(HERE.parent))


if __name__ == "__main__":
    main()
