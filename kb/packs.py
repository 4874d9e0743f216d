"""Evidence packs: a learning question's evidence (pinned passages first, then each site's) as a
Word document, Markdown or CSV for a learning event, every passage cited with its document's title,
page, site, date and a link to it. Pure: evidence in, bytes or text out.
"""

from __future__ import annotations

import io

import docx
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import RGBColor

from . import export
from .feeds import xml_safe
from .models import Hit
from .questions import Evidence

COLUMNS = ["rank", "pinned", *export.COLUMNS[1:]]
PINNED = "Pinned as evidence"  # by a curator, or marked helpful on the question's page
NOTHING = "Nothing on this question yet."
LINK_COLOUR = RGBColor(0x05, 0x63, 0xC1)  # Word's own hyperlink blue


def title(evidence: Evidence) -> str:
    return f"Evidence pack: {evidence.question.text}"


def intro(evidence: Evidence, base_url: str, made: str) -> list[str]:
    """The lines under a pack's title: the question's description, its filters, what the pack holds."""
    q = evidence.question
    lines = [q.description] if q.description else []
    limits = [f"sites: {', '.join(q.sites)}" if q.sites else "", f"types: {', '.join(q.types)}" if q.types else "",
              f"from {q.date_from}" if q.date_from else "", f"to {q.date_to}" if q.date_to else ""]
    if any(limits):
        lines.append("Asked of " + "; ".join(x for x in limits if x) + ".")
    hits = evidence.all_hits()
    lines.append(f"Made {made} from the HCT learning library ({base_url.rstrip('/')}): {len(hits)} passage"
                 f"{'s' if len(hits) != 1 else ''}, {len(evidence.pinned)} of them pinned as evidence, the rest "
                 "each site's best matches.")
    gaps = [s.site for s in evidence.sites if not s.found]
    if gaps:
        lines.append(f"Nothing on this question yet from: {', '.join(gaps)}.")
    if any(h.visibility != "public" for h in hits):
        lines.append("This pack quotes passages that are not public: share it only with those who may read them.")
    return lines


def rows(evidence: Evidence, base_url: str) -> list[dict]:
    """One row per passage, pinned first, then by site; a row saying so for each site with nothing."""
    out = [export.hit_row(n, h, base_url) | {"pinned": "yes"} for n, h in enumerate(evidence.pinned, 1)]
    for site in evidence.sites:
        out += [export.hit_row(len(out) + 1, h, base_url, site.site) | {"pinned": ""} for h in site.hits]
        if not site.found:
            out.append({**{c: "" for c in COLUMNS}, "site": site.site, "passage": export.NOTHING})
    return out


def to_csv(evidence: Evidence, base_url: str) -> str:
    return export.to_csv(rows(evidence, base_url), COLUMNS)


def to_markdown(evidence: Evidence, base_url: str, made: str) -> str:
    return export.to_markdown(rows(evidence, base_url), title(evidence), COLUMNS, intro(evidence, base_url, made))


def to_docx(evidence: Evidence, base_url: str, made: str) -> bytes:
    """A Word document: the question as its title, then a heading per site (pinned passages under
    their own first), each passage a quotation followed by its citation and link."""
    document = docx.Document()
    document.core_properties.title = xml_safe(title(evidence))[:255]
    document.core_properties.author = "HCT learning library"
    document.add_heading(xml_safe(evidence.question.text), level=0)
    for line in intro(evidence, base_url, made):
        document.add_paragraph(xml_safe(line))
    if evidence.pinned:
        document.add_heading(PINNED, level=1)
        for hit in evidence.pinned:
            _quotation(document, hit, base_url)
    for site in evidence.sites:
        document.add_heading(xml_safe(site.site), level=1)
        if site.partnership:
            document.add_paragraph(xml_safe(site.partnership)).runs[0].italic = True
        for hit in site.hits:
            _quotation(document, hit, base_url)
        if not site.hits:
            document.add_paragraph("Its evidence is pinned above." if site.found else NOTHING)
    if evidence.timeline:
        _timeline(document, evidence.timeline)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def citation(hit: Hit) -> str:
    """Title, page, site and date of a passage, as a pack cites it (its link follows)."""
    parts = [hit.title or "Untitled"]
    if hit.page:
        parts.append(f"page {hit.page}")
    parts += [hit.site or "no site", hit.published or "undated"]
    return ", ".join(parts)


def _quotation(document, hit: Hit, base_url: str) -> None:
    document.add_paragraph(xml_safe(" ".join(hit.text.split())), style="Quote")
    cited = document.add_paragraph()
    cited.add_run(xml_safe(citation(hit)) + ". ")
    _hyperlink(cited, export.passage_link(base_url, hit))


def _hyperlink(paragraph, url: str) -> None:
    """A link that opens `url`, showing it (a printed pack keeps its addresses)."""
    rel = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), rel)
    run = OxmlElement("w:r")
    props = OxmlElement("w:rPr")
    colour = OxmlElement("w:color")
    colour.set(qn("w:val"), str(LINK_COLOUR))
    underline = OxmlElement("w:u")
    underline.set(qn("w:val"), "single")
    props.extend([colour, underline])
    text = OxmlElement("w:t")
    text.text = url
    run.extend([props, text])
    link.append(run)
    paragraph._p.append(link)


def _timeline(document, timeline: dict[str, dict[str, int]]) -> None:
    """Passages of evidence per site and publication year, as a table."""
    document.add_heading("Evidence over time", level=1)
    years = sorted({year for counts in timeline.values() for year in counts})
    table = document.add_table(rows=1, cols=len(years) + 1)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ["Site", *years]):
        cell.text = text
    header = OxmlElement("w:tblHeader")  # a header row, for screen readers and across pages
    header.set(qn("w:val"), "true")
    table.rows[0]._tr.get_or_add_trPr().append(header)
    for site, counts in timeline.items():
        cells = table.add_row().cells
        cells[0].text = xml_safe(site)
        for cell, year in zip(cells[1:], years):
            cell.text = str(counts.get(year, 0))
