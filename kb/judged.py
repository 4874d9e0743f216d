"""The curators' judgements as a judged set: how well search finds the evidence of their own
questions (`kb eval --questions`), overall and per site, and the same set as a BEIR folder.

Graded by document, as `kb eval` grades BEIR's qrels: a document is relevant (1) when a passage
of it is judged evidence for the question, judged not relevant (0) when its passages are judged
only "not evidence". By document rather than by passage because passages are an artefact of
chunking (a re-ingest or another chunk size moves their edges, and search folds repeats into one
hit), while whether a report speaks to a question does not change.

`kb eval` on the exported folder gives the very same figures (tests/test_questions.py checks it
on documents with headings and filtered questions): the export carries, in `kb` fields a BEIR
reader ignores, whatever the collection's ranking depends on and plain BEIR cannot say (see
kb/evaluate.py): each document's own passages with their heading paths and the title they were
embedded with (re-chunking the plain text would cut other passages and embed them without their
headings: other vectors and other keyword statistics), its site, type, date and tags, the retired
documents (their passages count in a curator's keyword statistics), and each question's filters,
applied by `kb eval` as here. Filters are carried rather than dropped on both sides so that the
figure compared is the one curators see, each question searched where it asks to be.

Per site, a question's qrels are cut to the judged documents of that site and scored against the
same ranking: a site whose evidence sits below other sites' results scores low there, though
the question overall may not (under-retrieved evidence, site by site).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import metrics
from .chunk import embed_text
from .collection import KnowledgeBase, text_hash
from .evaluate import RETIRED
from .models import VISIBILITIES, Document, Filters, Passage
from .questions import Question, Questions
from .search import Searcher

NO_SITE = "(no site)"


@dataclass
class JudgedSet:
    """Questions with at least one document judged evidence, their text and filters, and qrels by document id."""

    questions: dict[str, Question]
    qrels: dict[str, dict[str, int]]
    sites: dict[str, str]  # document id -> site, for every judged document


@dataclass
class QuestionScore:
    id: int
    text: str
    ndcg_at_10: float
    relevant: int
    judged: int
    sites: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "ndcg@10": round(self.ndcg_at_10, 4), "relevant": self.relevant,
                "judged": self.judged, "sites": {s: round(v, 4) for s, v in self.sites.items()}}


@dataclass
class JudgedReport:
    mode: str
    group: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    ndcg_ci95: tuple[float, float]
    sites: dict[str, tuple[float, int]]  # site -> (mean nDCG@10, questions with evidence there)
    questions: list[QuestionScore]

    def to_dict(self) -> dict:
        return {"dataset": "questions", "mode": self.mode, "group": self.group, "queries": self.queries,
                "ndcg@10": round(self.ndcg_at_10, 4), "recall@10": round(self.recall_at_10, 4),
                "recall@100": round(self.recall_at_100, 4), "mrr@10": round(self.mrr_at_10, 4),
                "p50_ms": round(self.p50_ms, 2),
                "ndcg@10_ci95": [round(self.ndcg_ci95[0], 4), round(self.ndcg_ci95[1], 4)],
                "sites": {s: {"ndcg@10": round(v, 4), "questions": n} for s, (v, n) in self.sites.items()},
                "questions": [q.to_dict() for q in self.questions]}


def judged_set(kb: KnowledgeBase) -> JudgedSet:
    """Every active question with a document judged evidence (retired documents left out)."""
    questions = {str(q.id): q for q in Questions(kb).list()}
    qrels: dict[str, dict[str, int]] = {}
    sites: dict[str, str] = {}
    for doc in kb.store.questions.judged_documents([int(i) for i in questions]):
        qrels.setdefault(str(doc.question_id), {})[str(doc.doc_id)] = int(doc.evidence)
        sites[str(doc.doc_id)] = doc.site or NO_SITE
    qrels = {q: judged for q, judged in qrels.items() if any(judged.values())}
    return JudgedSet({q: questions[q] for q in qrels}, qrels, sites)


def run(kb: KnowledgeBase, mode: str = "hybrid", k: int = 10, group: str = "passage") -> JudgedReport:
    """Each judged question through `Searcher.search` as a curator sees it (its own filters
    applied), its hits mapped to documents as `kb eval` maps them."""
    data = judged_set(kb)
    searcher = Searcher(kb)
    scores: dict[str, list[float]] = {"ndcg": [], "r10": [], "r100": [], "mrr": []}
    per_site: dict[str, list[float]] = {}
    latencies, shown = [], []
    for qid, question in data.questions.items():
        started = time.perf_counter()
        result = searcher.search(question.text, k=100, mode=mode, group=group,
                                 filters=question.filters(VISIBILITIES))
        latencies.append((time.perf_counter() - started) * 1000)
        # a folded hit stands for its near-duplicates too: they follow it in the ranking
        ranked = list(dict.fromkeys(str(d) for h in result.hits for d in [h.doc_id, *(a["doc_id"] for a in h.also_in)]))
        qrels = data.qrels[qid]
        scores["ndcg"].append(metrics.ndcg_at_k(ranked, qrels, k))
        scores["r10"].append(metrics.recall_at_k(ranked, qrels, 10))
        scores["r100"].append(metrics.recall_at_k(ranked, qrels, 100))
        scores["mrr"].append(metrics.mrr_at_k(ranked, qrels, 10))
        by_site = {}
        for site in sorted({data.sites[d] for d, grade in qrels.items() if grade > 0}):
            cut = {d: grade for d, grade in qrels.items() if data.sites[d] == site}
            by_site[site] = metrics.ndcg_at_k(ranked, cut, k)
            per_site.setdefault(site, []).append(by_site[site])
        shown.append(QuestionScore(question.id, question.text, scores["ndcg"][-1],
                                   sum(1 for g in qrels.values() if g > 0), len(qrels), by_site))
    mean = {name: sum(v) / len(v) if v else 0.0 for name, v in scores.items()}
    return JudgedReport(mode, group, len(shown), mean["ndcg"], mean["r10"], mean["r100"], mean["mrr"],
                        metrics.percentile(latencies, 50), metrics.bootstrap_interval(scores["ndcg"]),
                        {s: (sum(v) / len(v), len(v)) for s, v in sorted(per_site.items())}, shown)


def embedded_title(title: str, passages: list[Passage], hashes: list[str]) -> str | None:
    """The title a document's passages were embedded with, read back from their hashes: its own,
    or none ("": a title made up from the file name); None when neither (retitled since)."""
    for candidate in (title, ""):
        if all(text_hash(embed_text(candidate, p.heading, p.text)) == h for p, h in zip(passages, hashes)):
            return candidate
    return None


def document_record(doc: Document, body: str, passages: list[Passage], title: str) -> dict:
    """A BEIR corpus record (title and plain text) with what `kb eval` needs to store the document
    as the collection holds it: metadata, the title embedded, and the passages in order."""
    return {"_id": str(doc.id), "title": doc.title, "text": body,
            "kb": {"site": doc.site, "doc_type": doc.doc_type, "published": doc.published, "tags": doc.tags,
                   "embedded_title": title,
                   "passages": [{"text": p.text, "heading": p.heading, "page": p.page, "start": p.char_start,
                                 "end": p.char_end, "tokens": p.tokens} for p in passages]}}


def query_record(qid: str, question: Question) -> dict:
    """A BEIR query record, with the question's own filters where it has some."""
    record = {"_id": qid, "text": question.text}
    filters = {"site": question.sites, "doc_type": question.types,
               "date_from": question.date_from, "date_to": question.date_to}
    filters = {key: value for key, value in filters.items() if value}
    if filters:
        record["kb"] = {"filters": filters}
    return record


def write_beir(kb: KnowledgeBase, folder: Path) -> dict[str, int]:
    """The judged set as a BEIR folder `kb eval` reads: corpus.jsonl (every active document: its
    title and text, by id, and the `kb` field of `document_record`), kb-retired.jsonl (the retired
    ones, as records of the same kind), queries.jsonl (the judged questions and their filters) and
    qrels/test.tsv. Documents go in the order of their passages' ids, so that passages equal in
    score rank in the same order there. `retitled` counts documents retitled since their passages
    were embedded: the title they were embedded with is not kept, so there `kb eval` embeds the new one."""
    data = judged_set(kb)
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = kb.store.documents(Filters(visibility=VISIBILITIES), include_retired=True, limit=10**9)
    records, retitled = [], 0
    for doc in docs:
        passages = kb.store.chunks_of(doc.id)
        title = embedded_title(doc.title, passages, kb.store.embedded_hashes(doc.id))
        retitled += title is None
        first = min((p.id for p in passages), default=float("inf"))
        record = document_record(doc, kb.store.body(doc.id), passages, doc.title if title is None else title)
        records.append((first, doc.id, doc.status == "active", record))
    records.sort(key=lambda r: r[:2])
    _write_jsonl(folder / "corpus.jsonl", [record for *_, active, record in records if active])
    retired = [record for *_, active, record in records if not active]
    if retired:
        _write_jsonl(folder / RETIRED, retired)
    else:
        (folder / RETIRED).unlink(missing_ok=True)  # from an earlier export to this folder
    _write_jsonl(folder / "queries.jsonl", [query_record(qid, q) for qid, q in data.questions.items()])
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in data.qrels.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return {"documents": len(records) - len(retired), "queries": len(data.questions),
            "judgements": sum(len(j) for j in data.qrels.values()), "retired": len(retired), "retitled": retitled}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
