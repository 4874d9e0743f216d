"""End to end through the `kb` CLI with the real bundled model, real SQLite and real FAISS."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from conftest import SHARED, encrypted_pdf, make_docx, make_pdf
from cli import main

pytestmark = pytest.mark.model

PROFILE = """# Area profile: Newham

## The partnership
Well Newham brings together the council, NHS services and local charities in the east London borough.

## Focus
The partnership listens to residents about what keeps them well and funds small community groups.
"""


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    (src / "newham.md").write_text(PROFILE)
    (src / "phases.txt").write_text(
        "Funding phases\n\nIn phase one every area received fifty thousand pounds for up to nine months.\n\n"
        "In phase two the five successful partnerships each received up to £450,000 over three more years.\n")
    (src / "report.pdf").write_bytes(make_pdf([
        [("h1", "Context"), ("p", "Plymouth groups worked with the council on volunteering.")],
        [("h1", "What we learned"), ("p", "Volunteers stayed when they were thanked and trained.")]]))
    (src / "glos.docx").write_bytes(make_docx([("h1", "Gloucestershire"), ("p", "Enabling active communities across the county.")]))
    return src


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def search(capsys, data, query, *extra):
    code, out, _ = run(capsys, "--data", str(data), "search", query, "--json", *extra)
    assert code == 0
    return json.loads(out)


def test_ingest_search_reingest_remove(tmp_path, folder, capsys, model):
    data = tmp_path / "data"
    code, out, err = run(capsys, "--data", str(data), "ingest", str(folder), "--tag", "sample")
    assert code == 0, err
    assert "4 added" in out and "0 failed" in out

    result = search(capsys, data, "how big were the grants in the second stage?")
    top = result["hits"][0]
    assert set(top) >= {"doc_id", "title", "source", "site", "doc_type", "published", "page", "heading",
                        "text", "snippet", "score"}
    assert "£450,000" in top["text"]
    assert set(result) >= {"query", "took_ms", "hits"}

    hit = search(capsys, data, "do thanked volunteers stay longer")["hits"][0]
    assert hit["page"] == 2 and hit["heading"] == "What we learned"
    hit = search(capsys, data, "which organisation runs the partnership in east London?")["hits"][0]
    assert "Well Newham" in hit["text"] and hit["heading"].endswith("The partnership")

    started = time.perf_counter()
    code, out, _ = run(capsys, "--data", str(data), "ingest", str(folder), "--tag", "sample")
    assert code == 0 and "0 added" in out and "4 unchanged" in out
    assert time.perf_counter() - started < 5  # no loading, no embedding

    docs = json.loads(run(capsys, "--data", str(data), "docs", "--json")[1])
    newham = next(d for d in docs if d["original_name"] == "newham.md")
    code, out, _ = run(capsys, "--data", str(data), "remove", str(newham["id"]))
    assert code == 0 and "removed" in out
    stats = json.loads(run(capsys, "--data", str(data), "stats", "--json")[1])
    assert stats["documents"] == 3 and stats["index"]["vectors"] == stats["chunks"]
    assert all(h["doc_id"] != newham["id"] for h in search(capsys, data, "Well Newham")["hits"])


def test_changed_and_pruned_files(tmp_path, folder, capsys, model):
    data = tmp_path / "data"
    assert run(capsys, "--data", str(data), "ingest", str(folder))[0] == 0
    (folder / "newham.md").write_text(PROFILE.replace("Well Newham", "Healthy Newham Network"))
    (folder / "glos.docx").unlink()
    code, out, _ = run(capsys, "--data", str(data), "ingest", str(folder), "--prune")
    assert code == 0 and "1 updated" in out and "1 pruned" in out
    hits = search(capsys, data, "Healthy Newham Network", "--mode", "keyword")["hits"]
    assert hits and "Healthy Newham Network" in hits[0]["text"]
    assert all("Well Newham" not in h["text"] for h in search(capsys, data, "Well Newham")["hits"])


def test_bad_files_are_reported_and_good_ones_kept(tmp_path, folder, capsys, model):
    good_pdf = (folder / "report.pdf").read_bytes()
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n%garbage that is not a pdf")
    (folder / "locked.pdf").write_bytes(encrypted_pdf(good_pdf))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "junk.txt").write_bytes(bytes(range(256)) * 20)
    data = tmp_path / "data"
    code, out, err = run(capsys, "--data", str(data), "ingest", str(folder))
    assert code == 1
    assert "4 added" in out and "4 failed" in out
    for name, reason in [("corrupt.pdf", "corrupt PDF"), ("locked.pdf", "encrypted PDF"),
                         ("empty.txt", "empty file"), ("junk.txt", "binary data")]:
        assert any(name in line and reason in line for line in out.splitlines()), (name, out)
    assert search(capsys, data, "volunteers thanked and trained")["hits"]


def test_errors_become_messages_and_exit_status(tmp_path, capsys):
    for command in (["stats"], ["search", "x"], ["docs"], ["remove", "1"]):
        code, _, err = run(capsys, "--data", str(tmp_path / "typo"), *command)
        assert code == 1 and "no knowledge base in" in err, command
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    assert run(capsys, "--data", str(tmp_path), "ingest", str(tmp_path / "empty"))[0] == 0
    code, _, err = run(capsys, "--data", str(tmp_path), "remove", "999")
    assert code == 1 and "no document 999" in err
    code, _, err = run(capsys, "--data", str(tmp_path), "themes", "-k", "1")
    assert code == 1 and "at least 2" in err
    with pytest.raises(SystemExit):
        main(["serve", "--port", "99999"])
    assert "a port is a number from 1 to 65535" in capsys.readouterr().err
    code, _, err = run(capsys, "--data", str(tmp_path), "search", "x", "-k", "0")
    assert code == 1 and "k must be between" in err


@pytest.mark.skipif(not (SHARED / "seeds").is_dir(), reason="../shared/seeds is not beside this checkout")
def test_seed_articles(tmp_path, capsys, model):
    seeds = tmp_path / "seeds"
    shutil.copytree(SHARED / "seeds", seeds)
    data = tmp_path / "data"
    assert run(capsys, "--data", str(data), "ingest", str(seeds))[0] == 0
    hits = search(capsys, data, "how large are the second-phase grants", "-k", "3")["hits"]
    assert any("£450,000" in h["text"] for h in hits)
    hits = search(capsys, data, "who runs the King's Fund?", "-k", "3")["hits"]
    assert any("Richard Murray" in h["text"] for h in hits)
