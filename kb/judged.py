"""The curators' judgements as a judged set: how well search finds the evidence of their own
questions (`kb eval --questions`), overall and per site, and the same set as a BEIR folder.

Graded by document, as `kb eval` grades BEIR's qrels: a document is relevant (1) when a passage
of it is judged evidence for the question, judged not relevant (0) when its passages are judged
only "not evidence". By document rather than by passage because passages are an artefact of
chunking (a re-ingest or another chunk size moves their edges, and search folds repeats into one
hit), while whether a report speaks to a question does not change; and because `kb eval` on the
exported folder then measures the very same thing, which tests/test_questions.py checks.

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
from .collection import KnowledgeBase
from .models import VISIBILITIES, Filters
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


def write_beir(kb: KnowledgeBase, folder: Path) -> dict[str, int]:
    """The judged set as a BEIR folder `kb eval` reads: corpus.jsonl (every active document: its
    title and text, by id), queries.jsonl (the judged questions) and qrels/test.tsv. A BEIR query
    carries no filters, so a question with sites, types or dates is searched there without them."""
    data = judged_set(kb)
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = kb.store.documents(Filters(visibility=VISIBILITIES), limit=10**9)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps({"_id": str(doc.id), "title": doc.title, "text": kb.store.body(doc.id)},
                                ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, question in data.questions.items():
            fh.write(json.dumps({"_id": qid, "text": question.text}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in data.qrels.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return {"documents": len(docs), "queries": len(data.questions),
            "judgements": sum(len(j) for j in data.qrels.values())}
