"""The benchmark's inputs: MS MARCO passages as files, the sample corpus, and query sets.

Queries must not repeat within a measurement: kb remembers recent query vectors, so a repeated
query would skip the encoder and flatter kb. The pool holds the judged questions first, then
short phrases cut from the passages (the kind of query a search box gets).
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MSMARCO = ROOT.parent / "shared" / "eval" / "msmarco"
CORPUS = ROOT / "corpus"


PASSAGE_SET = "MS MARCO" if (MSMARCO / "corpus.jsonl").exists() else "sample-corpus paragraphs"


def passages(limit: int | None = None) -> list[dict]:
    """MS MARCO passages `{"_id", "text"}` in file order; without ../shared (a fresh clone), the
    paragraphs of the sample corpus's Markdown and text files, so the scripts still run."""
    if PASSAGE_SET != "MS MARCO":
        return corpus_paragraphs(limit)
    out = []
    with open(MSMARCO / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
                if limit and len(out) >= limit:
                    break
    return out


def write_passages(records: list[dict], folder: Path) -> int:
    """One plain-text file per passage (what `kb ingest` reads), in a fresh folder; returns the
    bytes written."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    total = 0
    for record in records:
        data = record["text"].encode("utf-8")
        (folder / f"{record['_id']}.txt").write_bytes(data)
        total += len(data)
    return total


def corpus_paragraphs(limit: int | None = None) -> list[dict]:
    out = []
    for path in corpus_files():
        if path.suffix.lower() not in (".md", ".txt"):
            continue
        for n, para in enumerate(path.read_text(encoding="utf-8").split("\n\n")):
            text = " ".join(para.split())
            if len(text.split()) >= 8 and not text.startswith("#"):
                out.append({"_id": f"{path.stem}-{n}", "text": text})
    return out[:limit] if limit else out


def corpus_files() -> list[Path]:
    """The files the sample corpus's manifest lists (what `kb ingest corpus/` reads)."""
    with open(CORPUS / "manifest.csv", encoding="utf-8") as fh:
        return [CORPUS / row["path"] for row in csv.DictReader(fh)]


def corpus_bytes() -> int:
    return sum(path.stat().st_size for path in corpus_files())


def judged_queries() -> list[str]:
    """Real questions: MS MARCO's, the hct set's and the sample corpus's."""
    out = []
    for path in (MSMARCO / "queries.jsonl", ROOT / "bench" / "hct" / "queries.jsonl"):
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as fh:
            out += [json.loads(line)["text"] for line in fh if line.strip()]
    with open(CORPUS / "questions.tsv", encoding="utf-8") as fh:
        out += [line.split("\t")[0] for line in list(fh)[1:] if line.strip()]
    return list(dict.fromkeys(out))


def query_pool(size: int, texts: list[str], seed: int = 7) -> list[str]:
    """Up to `size` distinct queries: the judged ones, then 3-7 word phrases cut from `texts`."""
    rng = random.Random(seed)
    pool = judged_queries()[:size]
    seen = set(pool)
    tries = 0
    while len(pool) < size and tries < 50 * size:  # few texts hold few distinct phrases: stop trying
        tries += 1
        words = rng.choice(texts).split()
        if len(words) < 8:
            continue
        n = rng.randint(3, 7)
        start = rng.randrange(0, len(words) - n)
        phrase = " ".join(w.strip(".,;:()\"'") for w in words[start:start + n]).strip()
        if phrase and phrase not in seen:
            seen.add(phrase)
            pool.append(phrase)
    rng.shuffle(pool)
    return pool
