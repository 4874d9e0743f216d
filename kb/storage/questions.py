"""Queries for learning questions and the curators' judgements of passages for them."""

from __future__ import annotations

import json
from typing import NamedTuple

from sqlalchemy import and_, delete, insert, select, update

from ..models import Filters
from .database import Database, now
from .filters import conditions
from .schema import chunks, documents, judgements, questions


class QuestionRow(NamedTuple):
    id: int
    text: str
    description: str
    filters: dict  # site and type lists, from, to
    status: str
    created_by: str
    created_at: str
    updated_at: str
    reviewed_at: str | None


class Judgement(NamedTuple):
    """A passage judged for a question: its document and text hash (what survives a re-ingest),
    the chunk it was when judged, and the verdict."""

    doc_id: int
    text_hash: str
    chunk_id: int
    verdict: str  # evidence or not_evidence
    source: str  # curator or feedback


class JudgedPassage(NamedTuple):
    """A passage of a judged document as it is now, beside one judgement of that document (the
    caller keeps the pairs whose text hashes agree)."""

    chunk_id: int
    doc_id: int
    text: str
    text_hash: str  # the judgement's
    verdict: str


class JudgedDocument(NamedTuple):
    """A judged document of a question, as the judged set grades it (retired ones left out)."""

    question_id: int
    doc_id: int
    site: str | None
    evidence: bool  # at least one passage judged evidence


QUESTION_COLUMNS = (questions.c.id, questions.c.text, questions.c.description, questions.c.filters,
                    questions.c.status, questions.c.created_by, questions.c.created_at, questions.c.updated_at,
                    questions.c.reviewed_at)
JUDGEMENT_COLUMNS = (judgements.c.doc_id, judgements.c.text_hash, judgements.c.chunk_id, judgements.c.verdict,
                     judgements.c.source)


def _question(row) -> QuestionRow:
    return QuestionRow(row[0], row[1], row[2], json.loads(row[3] or "{}"), *row[4:])


class QuestionRows:
    def __init__(self, db: Database):
        self.db = db

    def add(self, text: str, description: str, filters: dict, by: str) -> int:
        stamp = now()
        with self.db.transaction(bump=None) as conn:
            return conn.execute(insert(questions).values(
                text=text, description=description, filters=json.dumps(filters, sort_keys=True), status="active",
                created_by=by, created_at=stamp, updated_at=stamp).returning(questions.c.id)).scalar_one()

    def update(self, question_id: int, **values) -> bool:
        """Change these columns (`filters` as a dict); False when there is no such question."""
        if "filters" in values:
            values["filters"] = json.dumps(values["filters"], sort_keys=True)
        with self.db.transaction(bump=None) as conn:
            return conn.execute(update(questions).where(questions.c.id == question_id)
                                .values(**values, updated_at=now())).rowcount == 1

    def reviewed(self, question_id: int) -> bool:
        """Stamp the question as reviewed now (its last change stays as it was)."""
        with self.db.transaction(bump=None) as conn:
            return conn.execute(update(questions).where(questions.c.id == question_id)
                                .values(reviewed_at=now())).rowcount == 1

    def get(self, question_id: int) -> QuestionRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(*QUESTION_COLUMNS).where(questions.c.id == question_id)).first()
        return _question(row) if row else None

    def list(self, include_archived: bool = False) -> list[QuestionRow]:
        query = select(*QUESTION_COLUMNS).order_by(questions.c.id)
        if not include_archived:
            query = query.where(questions.c.status == "active")
        with self.db.read() as conn:
            return [_question(r) for r in conn.execute(query)]

    def judge(self, question_id: int, doc_id: int, text_hash: str, chunk_id: int, verdict: str | None,
              source: str, by: str) -> bool:
        """Record (or with None clear) a verdict on a passage. A curator's verdict replaces any; a
        verdict from feedback never replaces or clears a curator's. False when nothing changed."""
        key = and_(judgements.c.question_id == question_id, judgements.c.doc_id == doc_id,
                   judgements.c.text_hash == text_hash)
        with self.db.transaction(bump=None) as conn:
            held = conn.execute(select(judgements.c.source).where(key)).scalar()
            if held == "curator" and source != "curator":
                return False
            if verdict is None:
                return held is not None and conn.execute(delete(judgements).where(key)).rowcount == 1
            values = {"chunk_id": chunk_id, "verdict": verdict, "source": source, "by": by, "at": now()}
            if held is None:
                conn.execute(insert(judgements).values(question_id=question_id, doc_id=doc_id, text_hash=text_hash,
                                                       **values))
            else:
                conn.execute(update(judgements).where(key).values(**values))
            return True

    def judgements(self, question_id: int) -> list[Judgement]:
        query = (select(*JUDGEMENT_COLUMNS).where(judgements.c.question_id == question_id)
                 .order_by(judgements.c.at, judgements.c.doc_id, judgements.c.text_hash))
        with self.db.read() as conn:
            return [Judgement(*r) for r in conn.execute(query)]

    def judged_passages(self, question_id: int) -> list[JudgedPassage]:
        """Every passage of each document judged for the question, paired with each of that
        document's judgements: the caller matches texts to hashes, so a verdict follows its
        passage to the new chunk a re-ingest makes."""
        query = (select(chunks.c.id, chunks.c.doc_id, chunks.c.text, judgements.c.text_hash, judgements.c.verdict)
                 .join_from(judgements, chunks, chunks.c.doc_id == judgements.c.doc_id)
                 .where(judgements.c.question_id == question_id).order_by(chunks.c.id))
        with self.db.read() as conn:
            return [JudgedPassage(*r) for r in conn.execute(query)]

    def judged_documents(self, question_ids: list[int]) -> list[JudgedDocument]:
        """Per question, each active document with a judged passage, and whether any is evidence."""
        query = (select(judgements.c.question_id, documents.c.id, documents.c.site, judgements.c.verdict)
                 .join_from(judgements, documents, documents.c.id == judgements.c.doc_id)
                 .where(judgements.c.question_id.in_(question_ids), documents.c.status == "active")
                 .order_by(judgements.c.question_id, documents.c.id))
        found: dict[tuple[int, int], JudgedDocument] = {}
        with self.db.read() as conn:
            for question_id, doc_id, site, verdict in conn.execute(query):
                before = found.get((question_id, doc_id))
                found[(question_id, doc_id)] = JudgedDocument(
                    question_id, doc_id, site, verdict == "evidence" or bool(before and before.evidence))
        return list(found.values())

    def partnerships(self, sites: list[str], visibility: tuple[str, ...]) -> dict[str, str]:
        """Each site's partnership, as its first document the reader may see names it."""
        query = (select(documents.c.site, documents.c.partnership)
                 .where(conditions(Filters(site=list(sites), visibility=tuple(visibility)), dialect=self.db.dialect),
                        documents.c.partnership.is_not(None), documents.c.partnership != "")
                 .order_by(documents.c.id))
        found: dict[str, str] = {}
        with self.db.read() as conn:
            for site, partnership in conn.execute(query):
                found.setdefault(site, partnership)
        return found
