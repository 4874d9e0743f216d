"""Learning questions: the questions a learning partner keeps, and the evidence each site has on
them over the years, as curators judge it.

A question is searched across sites as /across searches (each site on its own, passages close
enough in meaning kept). Curators judge passages: evidence is pinned, "not evidence" is hidden
from that question. A judgement is kept by document and passage text, so it follows its passage
through a re-ingest that leaves the text as it was. SQL lives in kb/storage/questions.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import date

import numpy as np

from .collection import KnowledgeBase, text_hash
from .errors import BadRequest, InvalidField, NotFound
from .models import Filters, Hit
from .search import MAX_K, RELEVANCE_FLOOR, Searcher, validate
from .snippet import make_snippet
from .storage.questions import Judgement, QuestionRow

VERDICTS = ("evidence", "not_evidence")
SOURCES = ("curator", "feedback")
STATUSES = ("active", "archived")
TEXT_LIMIT = 500  # a question, not a document: long enough for two sentences
DESCRIPTION_LIMIT = 2000
VALUE_LIMIT = 100  # a site or type, as the curator's metadata form allows
MAX_VALUES = 20
PROGRAMME = "Programme"  # the programme's own documents: not a site, left out unless a question names it
UNDATED = "undated"
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass
class Question:
    id: int
    text: str
    description: str
    sites: list[str]
    types: list[str]
    date_from: str | None
    date_to: str | None
    status: str
    created_by: str
    created_at: str
    updated_at: str
    reviewed_at: str | None

    def to_dict(self) -> dict:
        return asdict(self)

    def filters(self, visibility: tuple[str, ...]) -> Filters:
        """The question's own restrictions, for a reader who may see `visibility`."""
        return Filters(site=list(self.sites), doc_type=list(self.types), date_from=self.date_from,
                       date_to=self.date_to, visibility=tuple(visibility))


@dataclass
class SiteEvidence:
    """One site's best matching passages on a question (pinned ones are listed apart and counted here)."""

    site: str
    partnership: str | None
    hits: list[Hit] = field(default_factory=list)
    pinned: int = 0  # passages of this site judged evidence

    @property
    def found(self) -> bool:
        return bool(self.hits or self.pinned)

    def to_dict(self) -> dict:
        return {"site": self.site, "partnership": self.partnership, "found": self.found, "pinned": self.pinned,
                "hits": [h.to_dict() for h in self.hits]}


@dataclass
class Evidence:
    """One question's evidence as one reader may see it."""

    question: Question
    pinned: list[Hit]  # judged evidence, still visible to this reader, best first
    sites: list[SiteEvidence]  # per site its best matching passages, "not evidence" left out; sites with nothing last
    timeline: dict[str, dict[str, int]]  # site -> {publication year: passages of evidence}
    new: set[int]  # chunk ids of matching passages whose document arrived or changed after reviewed_at
    hidden: list[Hit] = field(default_factory=list)  # judged not evidence, visible to this reader (curators undo here)

    def all_hits(self) -> list[Hit]:
        """Pinned first, then the rest by site, each passage once."""
        seen, out = set(), []
        for hit in [*self.pinned, *(h for s in self.sites for h in s.hits)]:
            if hit.chunk_id not in seen:
                seen.add(hit.chunk_id)
                out.append(hit)
        return out

    def to_dict(self) -> dict:
        return {"question": self.question.to_dict(), "pinned": [h.to_dict() for h in self.pinned],
                "sites": [s.to_dict() for s in self.sites], "timeline": self.timeline, "new": sorted(self.new),
                "hidden": [h.to_dict() for h in self.hidden]}


class Questions:
    """The service the web app and the command line use."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self.rows = kb.store.questions

    # the questions themselves ---------------------------------------------------------------

    def add(self, text: str, description: str = "", sites=(), types=(), date_from: str | None = None,
            date_to: str | None = None, by: str = "cli") -> Question:
        fields = _checked(text=text, description=description, sites=sites, types=types, date_from=date_from,
                          date_to=date_to)
        question_id = self.rows.add(fields["text"], fields["description"], _filters(fields), by)
        return self.get(question_id)

    def edit(self, question_id: int, **changes) -> Question:
        """Change any of text, description, sites, types, date_from and date_to."""
        unknown = set(changes) - {"text", "description", "sites", "types", "date_from", "date_to"}
        if unknown:
            raise BadRequest(f"a question has no field {sorted(unknown)[0]!r}")
        current = asdict(self.get(question_id))
        fields = _checked(**{k: changes.get(k, current[k])
                             for k in ("text", "description", "sites", "types", "date_from", "date_to")})
        self.rows.update(question_id, text=fields["text"], description=fields["description"], filters=_filters(fields))
        return self.get(question_id)

    def archive(self, question_id: int) -> Question:
        return self._set_status(question_id, "archived")

    def restore(self, question_id: int) -> Question:
        return self._set_status(question_id, "active")

    def _set_status(self, question_id: int, status: str) -> Question:
        if not self.rows.update(question_id, status=status):
            raise NotFound(f"no question {question_id}")
        return self.get(question_id)

    def get(self, question_id: int) -> Question:
        row = self.rows.get(question_id)
        if row is None:
            raise NotFound(f"no question {question_id}")
        return _question(row)

    def list(self, include_archived: bool = False) -> list[Question]:
        return [_question(r) for r in self.rows.list(include_archived)]

    def mark_reviewed(self, question_id: int) -> Question:
        """The curator has looked at the evidence as it is now: only later passages are new."""
        if not self.rows.reviewed(question_id):
            raise NotFound(f"no question {question_id}")
        return self.get(question_id)

    # judgements -----------------------------------------------------------------------------

    def judge(self, question_id: int, chunk_id: int, verdict: str | None, by: str, source: str = "curator") -> bool:
        """Judge a passage for a question: "evidence", "not_evidence", or None to clear. Feedback
        never overrides a curator. Whether anything changed."""
        if verdict is not None and verdict not in VERDICTS:
            raise BadRequest(f"a verdict is evidence or not_evidence, not {verdict!r}")
        if source not in SOURCES:
            raise BadRequest(f"a judgement comes from a curator or feedback, not {source!r}")
        self.get(question_id)
        row = self.kb.store.chunk_rows([chunk_id]).get(chunk_id)
        if row is None:
            raise NotFound(f"no passage {chunk_id}")
        return self.rows.judge(question_id, row.doc_id, text_hash(row.text), chunk_id, verdict, source, by)

    def judgements(self, question_id: int) -> list[Judgement]:
        """(doc_id, text_hash, chunk_id, verdict, source) of each judged passage; the chunk id is
        the passage's current one where its text is still in its document, else the one judged."""
        current = {(doc, h): chunk for chunk, (doc, h, _) in self._judged(question_id).items()}
        return [j._replace(chunk_id=current.get((j.doc_id, j.text_hash), j.chunk_id))
                for j in self.rows.judgements(question_id)]

    def verdicts(self, question_id: int) -> dict[int, str]:
        """The current chunk id of each judged passage whose text is still in its document, and its verdict."""
        return {chunk: verdict for chunk, (_, _, verdict) in self._judged(question_id).items()}

    def _judged(self, question_id: int) -> dict[int, tuple[int, str, str]]:
        found, hashes = {}, {}
        for p in self.rows.judged_passages(question_id):
            if p.chunk_id not in hashes:
                hashes[p.chunk_id] = text_hash(p.text)
            if hashes[p.chunk_id] == p.text_hash:
                found[p.chunk_id] = (p.doc_id, p.text_hash, p.verdict)
        return found

    # the evidence ---------------------------------------------------------------------------

    def evidence(self, searcher: Searcher, question_id: int, visibility: tuple[str, ...],
                 per_site: int = 3) -> Evidence:
        """Each site's best passages on the question, as this reader may see them: judged evidence
        pinned first, "not evidence" left out, the sites with nothing last; the passages of
        evidence per site and publication year; and which are new since the last review."""
        question = self.get(question_id)
        kb = self.kb
        text = validate(question.text, per_site, "hybrid")
        vector = kb.embedder.encode_query(text)
        verdicts = self.verdicts(question_id)
        judged = _visible_rows(kb, list(verdicts), visibility)
        closeness = _cosines(kb, vector, list(judged))
        pinned = sorted((_hit(row, closeness[i], text) for i, row in judged.items() if verdicts[i] == "evidence"),
                        key=lambda h: (-h.score, h.chunk_id))
        hidden = sorted((_hit(row, closeness[i], text) for i, row in judged.items() if verdicts[i] != "evidence"),
                        key=lambda h: (-h.score, h.chunk_id))
        base = question.filters(visibility)
        counted: dict[str, dict[int, Hit]] = {}  # site -> passages of evidence by chunk id
        for hit in pinned:
            if hit.site:
                counted.setdefault(hit.site, {})[hit.chunk_id] = hit
        sites = []
        names = _sites(kb, question, base, pinned)
        partnerships = self.rows.partnerships(names, visibility) if names else {}
        for site in names:
            found = searcher.search(text, k=MAX_K, filters=replace(base, site=[site])).hits
            close = _cosines(kb, vector, [h.chunk_id for h in found])
            matching = [h for h in found if close[h.chunk_id] >= RELEVANCE_FLOOR and h.chunk_id not in verdicts]
            counted.setdefault(site, {}).update((h.chunk_id, h) for h in matching)
            pins = sum(1 for h in pinned if h.site == site)
            sites.append(SiteEvidence(site, partnerships.get(site), matching[:per_site], pins))
        sites.sort(key=lambda s: (not s.found, s.site))
        timeline = {site: _years(hits.values()) for site, hits in sorted(counted.items()) if hits}
        shown = {h.chunk_id: h for hits in counted.values() for h in hits.values()}
        return Evidence(question, pinned, sites, timeline, self._new(question, shown, visibility), hidden)

    def _new(self, question: Question, hits: dict[int, Hit], visibility) -> set[int]:
        if not hits:
            return set()
        if question.reviewed_at is None:  # never reviewed: everything is yet to be looked at
            return set(hits)
        docs = self.kb.store.documents(Filters(doc_ids=sorted({h.doc_id for h in hits.values()}),
                                               visibility=tuple(visibility)))
        changed = {d.id for d in docs if d.updated_at > question.reviewed_at}
        return {i for i, h in hits.items() if h.doc_id in changed}


def _checked(text, description, sites, types, date_from, date_to) -> dict:
    """A question's fields, checked once as they come in (from the web form, the API or the CLI)."""
    text = " ".join((text or "").split())
    if not text:
        raise InvalidField("text", "a question needs its text")
    if len(text) > TEXT_LIMIT:
        raise InvalidField("text", f"the question is {len(text):,} characters long; at most {TEXT_LIMIT} can be saved")
    description = (description or "").strip()
    if len(description) > DESCRIPTION_LIMIT:
        raise InvalidField("description", f"the description is {len(description):,} characters long; "
                         f"at most {DESCRIPTION_LIMIT:,} can be saved")
    out = {"text": text, "description": description}
    for name, values in (("sites", sites), ("types", types)):
        values = list(dict.fromkeys(" ".join(v.split()) for v in values or () if v and v.strip()))
        if len(values) > MAX_VALUES:
            raise InvalidField(name, f"a question names at most {MAX_VALUES} {name}")
        if any(len(v) > VALUE_LIMIT for v in values):
            raise InvalidField(name, f"a name among the {name} is longer than {VALUE_LIMIT} characters")
        out[name] = values
    for name, value in (("from", date_from), ("to", date_to)):
        value = (value or "").strip() or None
        if value is not None and not _is_date(value):
            raise InvalidField(f"date_{name}",
                               f"{name} must be a date like 2021, 2021-06 or 2021-06-30, not {value[:40]!r}")
        out[f"date_{name}"] = value
    if out["date_from"] and out["date_to"] and out["date_to"] < out["date_from"][:len(out["date_to"])]:
        raise InvalidField("date_to", "the dates are the wrong way round: from comes before to")
    return out


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    parts = [int(p) for p in value.split("-")] + [1, 1]
    try:
        date(*parts[:3])
    except ValueError:
        return False
    return True


def _filters(fields: dict) -> dict:
    return {"site": fields["sites"], "type": fields["types"], "from": fields["date_from"], "to": fields["date_to"]}


def _question(row: QuestionRow) -> Question:
    f = row.filters
    return Question(row.id, row.text, row.description, list(f.get("site") or []), list(f.get("type") or []),
                    f.get("from"), f.get("to"), row.status, row.created_by, row.created_at, row.updated_at,
                    row.reviewed_at)


def _sites(kb: KnowledgeBase, question: Question, base: Filters, pinned: list[Hit]) -> list[str]:
    """The sites a question is asked of: those it names, else every site with a document this
    reader may see under its other filters (not the programme's own); and any a pinned passage is from."""
    if question.sites:
        sites = list(question.sites)
    else:
        sites = [s for s, _ in kb.store.counts("site", base) if s != PROGRAMME]
    return sorted(set(sites) | {h.site for h in pinned if h.site})


def _visible_rows(kb: KnowledgeBase, ids: list[int], visibility) -> dict:
    return {i: row for i, row in kb.store.chunk_rows(ids).items()
            if row.status == "active" and row.visibility in visibility}


def _cosines(kb: KnowledgeBase, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
    if not ids:
        return {}
    return dict(zip(ids, (float(s) for s in kb.index.scores(np.asarray(ids, dtype=np.int64), vector))))


def _hit(row, score: float, text: str) -> Hit:
    return Hit(doc_id=row.doc_id, chunk_id=row.id, ordinal=row.ordinal, title=row.title, source=row.source,
               site=row.site, doc_type=row.doc_type, published=row.published, page=row.page, heading=row.heading,
               text=row.text, snippet=make_snippet(row.text, text, emphasise=True), score=round(score, 6),
               visibility=row.visibility)


def _years(hits) -> dict[str, int]:
    years: dict[str, int] = {}
    for hit in hits:
        year = (hit.published or "")[:4] or UNDATED
        years[year] = years.get(year, 0) + 1
    return dict(sorted(years.items()))
