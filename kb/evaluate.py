"""`kb eval`: retrieval quality on a BEIR-format folder, through the same pipeline as `kb ingest`.

The corpus becomes a throwaway knowledge base (each record one document), kept in the data
folder's `eval/` cache keyed by corpus, model and chunking so that a second run skips embedding.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from . import metrics
from .collection import KnowledgeBase
from .errors import BadRequest
from .models import Block, DocMeta, LoadedDocument, NewDocument
from .search import Searcher
from .settings import Settings

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class EvalSet:
    name: str
    corpus: list[dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    fingerprint: str


@dataclass
class EvalReport:
    dataset: str
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float
    ndcg_ci95: tuple[float, float] = (0.0, 0.0)  # bootstrap interval of nDCG@10 over the queries
    group: str = "passage"
    relevant_docs_at_10: float = 0.0  # distinct relevant documents among the first 10 results shown

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "mode": self.mode, "queries": self.queries,
                "ndcg@10": round(self.ndcg_at_10, 4), "recall@10": round(self.recall_at_10, 4),
                "recall@100": round(self.recall_at_100, 4), "mrr@10": round(self.mrr_at_10, 4),
                "p50_ms": round(self.p50_ms, 2), "p95_ms": round(self.p95_ms, 2),
                "ndcg@10_ci95": [round(self.ndcg_ci95[0], 4), round(self.ndcg_ci95[1], 4)],
                "group": self.group, "relevant_docs@10": round(self.relevant_docs_at_10, 4)}


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise BadRequest(f"{path.name} line {number} is not JSON") from None


def read_beir(folder: Path, split: str = "test") -> EvalSet:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (a header line is tolerated)."""
    folder = Path(folder)
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    for path in paths:
        if not path.is_file():
            raise BadRequest(f"not a BEIR folder: {path} is missing")
    corpus = list(_jsonl(paths[0]))
    queries = {str(q["_id"]): q["text"] for q in _jsonl(paths[1])}
    qrels: dict[str, dict[str, int]] = {}
    with open(paths[2], encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # header or blank line
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    if not corpus:
        raise BadRequest(f"{paths[0]} holds no documents")
    if not any(q in queries for q in qrels):
        raise BadRequest(f"no query in {paths[1].name} has judgments in {paths[2].name}")
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return EvalSet(folder.name, corpus, queries, qrels, digest.hexdigest()[:16])


def eval_schema(url: str, schema: str, fresh: bool) -> str:
    """The URL of `schema` (made if missing; emptied when `fresh`) in the database at `url`."""
    from urllib.parse import quote

    from sqlalchemy import text

    from .storage import Database

    db = Database.open(url)
    try:
        with db.transaction(bump=None) as conn:
            if fresh:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        db.close()
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema},public')}"


def build(settings: Settings, data: EvalSet, fresh: bool = False, progress: Progress | None = None,
          embedder=None) -> KnowledgeBase:
    """The eval knowledge base for this corpus, model and chunking (reused when already built)."""
    key = hashlib.sha256(json.dumps([data.fingerprint, settings.model, settings.chunk_tokens,
                                     settings.chunk_overlap]).encode()).hexdigest()[:16]
    folder = Path(settings.data_dir) / "eval" / f"{data.name}-{key}"
    done = folder / "complete"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    url = settings.database_url
    if url:  # PostgreSQL: a schema of its own in the same database, never the collection's tables
        url = eval_schema(url, f"kb_eval_{re.sub(r'[^a-z0-9]+', '_', data.name.lower())}_{key}", fresh)
    kb = KnowledgeBase.open(replace(settings, data_dir=folder, model_cache=settings.model_cache_dir,
                                    database_url=url), embedder)
    if done.exists() if not url else kb.store.count("documents") == len(data.corpus):
        return kb
    total = len(data.corpus)
    with kb.writing():
        existing = {d.source for d in kb.store.documents(include_retired=True, limit=10**9)}
        batch: list[NewDocument] = []
        for number, record in enumerate(data.corpus, 1):
            source = f"beir:{record['_id']}"
            if source not in existing:
                text = record.get("text") or ""
                title = (record.get("title") or "").strip()
                blocks = [Block(p.strip()) for p in text.split("\n\n") if p.strip()] or [Block(title or " ")]
                sha = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
                batch.append(NewDocument(source, sha, LoadedDocument(blocks, title=title or None),
                                         DocMeta(title=title or None), original_name=str(record["_id"])))
            if len(batch) >= 256 or (number == total and batch):
                kb.add_batch(batch)
                batch = []
            if progress:
                progress("building", number, total)
    if not url:
        done.write_text(json.dumps({"documents": total}))
    return kb


def run(kb: KnowledgeBase, data: EvalSet, mode: str = "hybrid", k: int = 10,
        progress: Progress | None = None, group: str = "passage") -> EvalReport:
    """Every judged query through `Searcher.search`; chunk hits mapped to documents (best chunk).
    `relevant_docs@10` counts the distinct relevant documents among the first ten results as a
    page lists them (passages, or documents when grouped)."""
    searcher = Searcher(kb)
    judged = [q for q in data.queries if q in data.qrels]
    scores = {"ndcg": [], "r10": [], "r100": [], "mrr": [], "docs10": []}
    latencies = []
    searcher.search(data.queries[judged[0]], k=10, mode=mode) if judged else None  # warm caches
    for number, qid in enumerate(judged, 1):
        started = time.perf_counter()
        result = searcher.search(data.queries[qid], k=100, mode=mode, group=group)
        latencies.append((time.perf_counter() - started) * 1000)
        # a folded hit stands for its near-duplicates too: they follow it in the ranking
        ranked = list(dict.fromkeys(s.removeprefix("beir:") for h in result.hits
                                    for s in [h.source, *(a["source"] for a in h.also_in)]))
        qrels = data.qrels[qid]
        scores["ndcg"].append(metrics.ndcg_at_k(ranked, qrels, k))
        scores["r10"].append(metrics.recall_at_k(ranked, qrels, 10))
        scores["r100"].append(metrics.recall_at_k(ranked, qrels, 100))
        scores["mrr"].append(metrics.mrr_at_k(ranked, qrels, 10))
        shown = {h.source.removeprefix("beir:") for h in result.hits[:10]}
        scores["docs10"].append(sum(1 for doc in shown if qrels.get(doc, 0) > 0))
        if progress:
            progress(f"searching ({mode})", number, len(judged))
    mean = {name: sum(v) / len(v) if v else 0.0 for name, v in scores.items()}
    return EvalReport(data.name, mode, len(judged), mean["ndcg"], mean["r10"], mean["r100"], mean["mrr"],
                      metrics.percentile(latencies, 50), metrics.percentile(latencies, 95),
                      metrics.bootstrap_interval(scores["ndcg"]), group, mean["docs10"])
