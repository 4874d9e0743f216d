"""Build bench/hct/corpus.jsonl (BEIR format) from the sample corpus.

Run from the repository root:

    .venv/bin/python bench/hct/build.py

One record per public document in corpus/manifest.csv:
{"_id": <manifest path>, "title": <manifest title>, "text": <loaded text>}.
Text comes from the project's own loaders (ingest.load), blocks joined by a
blank line. Documents whose visibility is not "public" are skipped.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = ROOT / "corpus"
OUT = HERE / "corpus.jsonl"

sys.path.insert(0, str(ROOT))

from ingest import load  # noqa: E402


def main() -> int:
    with open(CORPUS / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    written = skipped = 0
    with open(OUT, "w", encoding="utf-8") as out:
        for row in rows:
            path = row["path"].strip()
            if row.get("visibility", "").strip().lower() != "public":
                skipped += 1
                print(f"skip (visibility={row.get('visibility')}): {path}", file=sys.stderr)
                continue
            data = (CORPUS / path).read_bytes()
            doc = load(data, Path(path).name)
            text = "\n\n".join(b.text for b in doc.blocks)
            record = {"_id": path, "title": row["title"].strip(), "text": text}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    print(f"wrote {written} documents to {OUT.relative_to(ROOT)} (skipped {skipped})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
