"""`kb eval`: retrieval quality on a BEIR-format folder, through the same pipeline as `kb ingest`.

The corpus becomes a throwaway knowledge base (each record one document), kept in the data
folder's `eval/` cache keyed by corpus, model and chunking so that a second run skips embedding.

A folder that `kb questions export-beir` wrote also carries, in a `kb` field BEIR readers ignore,
what a collection's own search depends on, so that `kb eval` scores it as the collection scores
itself (`kb eval --questions`): a corpus record's metadata (site, type, date, tags), the title its
passages were embedded with and the passages themselves (text, heading path, page, in order),
stored as they are instead of chunking the text again; a query's filters, applied to its search;
and `kb-retired.jsonl`, the collection's retired documents, never found but counted in keyword
statistics as the collection counts them. `rechunk` cuts such a corpus with this run's chunking.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from . import metrics
from .collection import KnowledgeBase, Prepared, prepare_passages
from .errors import BadRequest
from .models import Block, Chunk, DocMeta, Filters, LoadedDocument, NewDocument
from .search import Searcher
from .settings import Settings

Progress = Callable[[str, int, int], None]  # (phase, done, total)
RETIRED = "kb-retired.jsonl"  # an export's retired documents: in keyword statistics, never found
FILTER_LISTS = ("site", "doc_type", "tag", "year")  # the filters a query record may carry, with the dates


@dataclass(frozen=True)
class Kept:
    """What an export carries beside a corpus record: the document's metadata, the title its
    passages were embedded with ("" when none was) and the passages, or None when it carries none."""

    meta: DocMeta
    embedded_title: str
    chunks: list[Chunk] | None


@dataclass
class EvalSet:
    name: str
    corpus: list[dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    fingerprint: str
    filters: dict[str, Filters] = field(default_factory=dict)  # query id -> its filters, where it carries some
    kept: dict[str, Kept] = field(default_factory=dict)  # record id -> what an export carries with it
    retired: list[dict] = field(default_factory=list)  # records stored retired


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


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise BadRequest(f"{what} is not a list of strings")
    return [str(v) for v in value]


def _text(value, what: str, empty: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and (empty or value)):
        return value
    raise BadRequest(f"{what} is not a string")


def read_filters(carried, qid: str) -> Filters | None:
    """A query record's `kb.filters` (site, doc_type, tag, year lists; date_from, date_to), if any."""
    what = f"query {qid}: kb.filters"
    if not isinstance(carried, dict):
        raise BadRequest(f"query {qid}: kb is not an object")
    carried = carried.get("filters")
    if carried is None:
        return None
    if not isinstance(carried, dict) or set(carried) - {*FILTER_LISTS, "date_from", "date_to"}:
        raise BadRequest(f"{what} holds only {', '.join(FILTER_LISTS)}, date_from and date_to")
    lists = {name: _strings(carried.get(name, []), f"{what}.{name}") for name in FILTER_LISTS}
    if not all(y.isdigit() for y in lists["year"]):
        raise BadRequest(f"{what}.year is not a list of years")
    return Filters(site=lists["site"], doc_type=lists["doc_type"], tag=lists["tag"],
                   year=[int(y) for y in lists["year"]], date_from=_text(carried.get("date_from"), f"{what}.date_from"),
                   date_to=_text(carried.get("date_to"), f"{what}.date_to"))


def read_kept(carried, rid: str) -> Kept:
    """A corpus record's `kb` field: metadata, the title embedded and passages (each with its text,
    heading path, page, character span in the text and token count)."""
    what = f"corpus record {rid}: kb"
    if not isinstance(carried, dict):
        raise BadRequest(f"{what} is not an object")
    meta = DocMeta(site=_text(carried.get("site"), f"{what}.site"),
                   doc_type=_text(carried.get("doc_type"), f"{what}.doc_type"),
                   published=_text(carried.get("published"), f"{what}.published"),
                   tags=_strings(carried.get("tags", []), f"{what}.tags"))
    title = _text(carried.get("embedded_title", ""), f"{what}.embedded_title") or ""
    passages = carried.get("passages")
    if passages is None:
        return Kept(meta, title, None)
    if not isinstance(passages, list):
        raise BadRequest(f"{what}.passages is not a list")
    chunks = []
    for n, p in enumerate(passages):
        try:
            chunks.append(Chunk(n, _text(p["text"], "text", empty=False), _text(p.get("heading") or "", "heading"),
                                None if p.get("page") is None else int(p["page"]),
                                int(p["start"]), int(p["end"]), int(p["tokens"])))
        except (BadRequest, KeyError, TypeError, ValueError, AttributeError):
            raise BadRequest(f"{what}.passages[{n}] needs text, start, end and tokens "
                             "(heading and page may be left out)") from None
    return Kept(meta, title, chunks)


def read_beir(folder: Path, split: str = "test") -> EvalSet:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (a header line is tolerated), with the
    `kb` fields and kb-retired.jsonl of an export where there are some."""
    folder = Path(folder)
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    for path in paths:
        if not path.is_file():
            raise BadRequest(f"not a BEIR folder: {path} is missing")
    corpus = list(_jsonl(paths[0]))
    retired = list(_jsonl(folder / RETIRED)) if (folder / RETIRED).is_file() else []
    kept = {str(r["_id"]): read_kept(r["kb"], str(r["_id"])) for r in [*corpus, *retired] if "kb" in r}
    records = list(_jsonl(paths[1]))
    queries = {str(q["_id"]): q["text"] for q in records}
    filters = {str(q["_id"]): read_filters(q["kb"], str(q["_id"])) for q in records if "kb" in q}
    filters = {qid: f for qid, f in filters.items() if f is not None}
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
    for path in paths + ([folder / RETIRED] if retired else []):
        digest.update(path.read_bytes())
    return EvalSet(folder.name, corpus, queries, qrels, digest.hexdigest()[:16], filters, kept, retired)


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


def record_document(record: dict, kept: Kept | None, rechunk: bool = False) -> NewDocument | Prepared:
    """A corpus record as a document to store: its text in paragraphs to chunk, or, where an
    export carries them (and not `rechunk`), the collection's own passages under the title they
    were embedded with. That title is the stored one too until `settle` gives the record's."""
    text = record.get("text") or ""
    title = (record.get("title") or "").strip()
    blocks = [Block(p.strip()) for p in text.split("\n\n") if p.strip()] or [Block(title or " ")]
    sha = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
    carried = kept is not None and kept.chunks is not None and not rechunk
    name = (kept.embedded_title if carried else title) or None
    meta = replace(kept.meta, title=name) if kept else DocMeta(title=name)
    doc = NewDocument(f"beir:{record['_id']}", sha, LoadedDocument(blocks, title=meta.title),
                      meta, original_name=str(record["_id"]))
    return prepare_passages(doc, kept.embedded_title, text, kept.chunks) if carried else doc


def settle(kb: KnowledgeBase, data: EvalSet) -> None:
    """Give each stored document of an export its record's title (where its passages were embedded
    with another, as after a curator's retitle) and retire the retired ones, as the collection has them."""
    titles = {f"beir:{r['_id']}": (r.get("title") or "").strip() for r in [*data.corpus, *data.retired]
              if str(r["_id"]) in data.kept}
    retired = {f"beir:{r['_id']}" for r in data.retired}
    stored = kb.store.documents(include_retired=True, limit=10**9)
    retitle = [(d.id, titles[d.source]) for d in stored if titles.get(d.source) and d.title != titles[d.source]]
    retire = [d.id for d in stored if d.source in retired and d.status != "retired"]
    if retitle or retire:
        with kb.writing(), kb.store.transaction(bump="revision") as conn:
            for doc_id, title in retitle:
                kb.store.update_meta(conn, doc_id, {"title": title})
            for doc_id in retire:
                kb.store.set_status(conn, doc_id, "retired")


def build(settings: Settings, data: EvalSet, fresh: bool = False, progress: Progress | None = None,
          embedder=None, rechunk: bool = False) -> KnowledgeBase:
    """The eval knowledge base for this corpus, model and chunking (reused when already built).
    Passages an export carries are stored as they are, unless `rechunk`."""
    carried = any(k.chunks is not None for k in data.kept.values())
    key = hashlib.sha256(json.dumps([data.fingerprint, settings.model, settings.chunk_tokens, settings.chunk_overlap]
                                    + (["rechunk"] if rechunk and carried else [])).encode()).hexdigest()[:16]
    folder = Path(settings.data_dir) / "eval" / f"{data.name}-{key}"
    done = folder / "complete"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    url = settings.database_url
    if url:  # PostgreSQL: a schema of its own in the same database, never the collection's tables
        url = eval_schema(url, f"kb_eval_{re.sub(r'[^a-z0-9]+', '_', data.name.lower())}_{key}", fresh)
    kb = KnowledgeBase.open(replace(settings, data_dir=folder, model_cache=settings.model_cache_dir,
                                    database_url=url), embedder)
    records = [*data.corpus, *data.retired]
    total = len(records)
    if done.exists() if not url else kb.store.count("documents") == total:
        if (data.kept or data.retired) and url:
            settle(kb, data)  # a build stopped between its last batch and this
        return kb
    with kb.writing():
        existing = {d.source for d in kb.store.documents(include_retired=True, limit=10**9)}
        batch: list[NewDocument | Prepared] = []
        for number, record in enumerate(records, 1):
            if f"beir:{record['_id']}" not in existing:
                batch.append(record_document(record, data.kept.get(str(record["_id"])), rechunk))
            if len(batch) >= 256 or (number == total and batch):
                kb.add_batch(batch)
                batch = []
            if progress:
                progress("building", number, total)
        if data.kept or data.retired:
            settle(kb, data)
    if not url:
        done.write_text(json.dumps({"documents": total}))
    return kb


def run(kb: KnowledgeBase, data: EvalSet, mode: str = "hybrid", k: int = 10,
        progress: Progress | None = None, group: str = "passage") -> EvalReport:
    """Every judged query through `Searcher.search` (with its filters, where it carries some);
    chunk hits mapped to documents (best chunk).
    `relevant_docs@10` counts the distinct relevant documents among the first ten results as a
    page lists them (passages, or documents when grouped)."""
    searcher = Searcher(kb)
    judged = [q for q in data.queries if q in data.qrels]
    scores = {"ndcg": [], "r10": [], "r100": [], "mrr": [], "docs10": []}
    latencies = []
    searcher.search(data.queries[judged[0]], k=10, mode=mode) if judged else None  # warm caches
    for number, qid in enumerate(judged, 1):
        started = time.perf_counter()
        result = searcher.search(data.queries[qid], k=100, mode=mode, group=group, filters=data.filters.get(qid))
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
