"""End to end through the `kb` CLI with the real bundled model, real SQLite and real FAISS."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SHARED, encrypted_pdf, make_docx, make_pdf
from cli import build_parser, main
from cli.main import EXAMPLES
from cli.output import IngestProgress
from kb.embed import Embedder
from kb.models import ItemOutcome
from kb.settings import Settings

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


def test_ingest_gives_every_skipped_file_a_line_and_counts_it(tmp_path, folder, capsys, model):
    (folder / "plans.key").write_bytes(b"PK\x03\x04 a Keynote deck")
    (folder / ".notes.txt").write_text("Hidden notes.")
    (folder / "profile.md").symlink_to(folder / "newham.md")
    code, out, err = run(capsys, "--data", str(tmp_path / "data"), "ingest", str(folder))
    assert code == 0  # skipped files are not failures
    assert "4 added, 0 unchanged, 0 failed, 3 skipped" in out
    lines = err.splitlines()
    for name, reason in [("plans.key", "unsupported file type: Apple Keynote (.key)"), (".notes.txt", "hidden file"),
                         ("profile.md", "symbolic link not followed (set KB_FOLLOW_SYMLINKS=1 to follow)")]:
        assert f"skipped   {folder / name}: {reason}" in lines, (name, err)
    assert len(lines) == 7  # one line for each file


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


def parsers(parser: argparse.ArgumentParser, name: str = "kb"):
    """(name, parser) for the command line and every command and action under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                assert summaries.get(sub_name), f"{name} {sub_name} has no one-line summary"
                yield from parsers(sub, f"{name} {sub_name}")


@pytest.mark.parametrize("name", [name for name, _ in parsers(build_parser())])
def test_every_command_and_option_explains_itself(name):
    parser = dict(parsers(build_parser()))[name]
    assert parser.description and parser.epilog, f"{name} has no description or examples"
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {'/'.join(action.option_strings) or action.dest} has no help"
    examples = [line.strip() for line in parser.epilog.splitlines()[1:]]
    assert examples == list(EXAMPLES[name.removeprefix("kb ") if name != "kb" else "kb"])


@pytest.mark.parametrize("example", sorted({line for lines in EXAMPLES.values() for line in lines}))
def test_help_examples_are_the_readmes(example):
    assert example in (ROOT / "README.md").read_text(), f"{example!r} is in --help but not in the README"


def test_help_lists_commands_with_summaries(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert re.search(r"^    search +search the collection$", out, re.M)
    assert "kb COMMAND --help" in " ".join(out.split())
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert "how many results to show" in out and 'kb search "phase 2 grant size" --json' in out


LIST = """# Next steps

After the first phase the partnership agreed these steps.
1. Set up a support line for volunteers who meet people in crisis.
2. Hold regular peer sessions so that volunteers are never alone with a hard case.
3. Agree a small set of outcome measures with residents and volunteers.
"""


def test_search_text_is_numbered_wrapped_and_counted(tmp_path, folder, capsys, model):
    (folder / "steps.md").write_text(LIST)
    data = tmp_path / "data"
    assert run(capsys, "--data", str(data), "ingest", str(folder))[0] == 0
    query = "support and peer sessions for volunteers"
    code, out, _ = run(capsys, "--data", str(data), "search", query, "-k", "3")
    assert code == 0
    lines = out.splitlines()
    found = search(capsys, data, query, "-k", "3")
    matching = found["matching"]
    assert lines[0].startswith(f"{matching['passages']} passage") and f"in {matching['documents']} document" in lines[0]
    assert all(len(line) <= 80 for line in lines), out
    # at column 0 only the counts and the results' numbers, in order; everything else is indented
    numbered = [line for line in lines[1:] if line and not line.startswith(" ")]
    assert [line.split()[0] for line in numbered] == [f"[{n}]" for n in range(1, len(found["hits"]) + 1)]
    steps = next(n for n, hit in enumerate(found["hits"]) if "Set up a support line" in hit["text"])
    block = out.split(f"[{steps + 1}] ", 1)[1].split("\n\n")[0]
    assert "\n3. Agree" in found["hits"][steps]["snippet"]  # a list, line by line, in the passage
    assert "with a hard case. 3. Agree a small set" in " ".join(block.split())  # its numbers stay inside the snippet
    assert all(line.startswith("    ") for line in block.splitlines()[1:])
    assert found["hits"][steps]["title"] == "Next steps" and found["group"] == "passage"

    code, out, _ = run(capsys, "--data", str(data), "search", query, "-k", "3", "--group", "document")
    grouped = search(capsys, data, query, "-k", "3", "--group", "document")
    assert grouped["group"] == "document" and set(grouped) == set(found)
    assert out.startswith(f"{grouped['matching']['documents']} document")
    more = [hit for hit in grouped["hits"] if hit["more"]]
    assert not more or re.search(r"^    \+ ", out, re.M)

    code, out, _ = run(capsys, "--data", str(data), "search", "zqxv blorptang wuggle", "--mode", "dense")
    assert code == 0 and out.splitlines()[0] == "nothing matches; nearest passages:"
    assert out.splitlines()[2].startswith("[1] ")
    code, out, _ = run(capsys, "--data", str(data), "search", "zqxv blorptang wuggle", "--mode", "keyword")
    assert out.strip() == "nothing matches"


def test_stats_count_documents_without_type_site_or_date(tmp_path, folder, capsys, model):
    data = tmp_path / "data"
    assert run(capsys, "--data", str(data), "ingest", str(folder))[0] == 0
    assert run(capsys, "--data", str(data), "ingest", str(folder / "newham.md"), "--type", "profile", "--site", "Newham")[0] == 0
    stats = json.loads(run(capsys, "--data", str(data), "stats", "--json")[1])
    assert stats["by_type"] == {"profile": 1} and stats["by_site"] == {"Newham": 1}
    assert stats["without"]["type"] == 3 and stats["without"]["site"] == 3
    assert sum(stats["by_year"].values()) + stats["without"]["year"] == stats["documents"] == 4
    out = run(capsys, "--data", str(data), "stats")[1]
    assert "by type: profile 1, (no type) 3" in out and "by site: Newham 1, (no site) 3" in out


def kb_command(data, *args) -> list[str]:
    return [sys.executable, "-m", "cli", "--data", str(data), *args]


def test_a_reader_that_leaves_early_ends_kb_quietly(tmp_path, folder, capsys, model):
    data = tmp_path / "data"
    assert run(capsys, "--data", str(data), "ingest", str(folder))[0] == 0
    for args, first in ((["docs", "--json"], "["), (["search", "volunteers"], "passage")):
        kb = subprocess.Popen(kb_command(data, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        head = subprocess.Popen(["head", "-1"], stdin=kb.stdout, stdout=subprocess.PIPE)
        kb.stdout.close()  # head alone reads the pipe
        out = head.communicate(timeout=120)[0].decode()
        err = kb.stderr.read().decode()
        assert kb.wait(timeout=120) in (0, 141), err  # 141 when head had left before kb's last write
        assert first in out and err == "", err
    # a reader gone before the first write: always the broken pipe, never a traceback
    kb = subprocess.Popen(kb_command(data, "docs", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    kb.stdout.close()
    err = kb.stderr.read().decode()
    assert kb.wait(timeout=120) == 141 and err == "", err


def test_ingest_on_a_terminal_shows_a_bar_with_a_total(tmp_path, folder):
    pty, fcntl, termios, struct = (pytest.importorskip(m) for m in ("pty", "fcntl", "termios", "struct"))
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a pty starts 0 columns wide
    kb = subprocess.Popen(kb_command(tmp_path / "data", "ingest", str(folder)), stdin=child_fd, stdout=child_fd,
                          stderr=child_fd, cwd=ROOT)
    os.close(child_fd)
    seen = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the child has gone and closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_fd)
    assert kb.wait(timeout=120) == 0
    text = seen.decode()
    assert "0/4" in text and "4/4" in text and "passages embedded" in text
    assert "4 added, 0 unchanged, 0 failed" in text
    assert "added     " not in text  # the per-file lines are for logs, not a terminal


def test_progress_says_when_the_model_is_loading(tmp_path):
    embedder = Embedder(cache_dir=Settings.from_env().model_cache_dir)  # nothing loads until asked
    stream = io.StringIO()
    bar = IngestProgress(3, embedder, stream, interval=60)
    bar.bar.ncols = 100
    embedder.loading = True  # as it is while an encoder loads
    bar.show()
    assert "loading the model…" in stream.getvalue() and "0/3" in stream.getvalue()
    embedder.loading = False
    bar.notify(ItemOutcome("a.md", "added"))
    bar.notify(ItemOutcome("b.pdf", "failed", "corrupt PDF"))
    bar.notify(ItemOutcome("gone.md", "pruned", "file is gone"))
    bar.embedded(5)
    bar.show()
    assert "failed   b.pdf: corrupt PDF" in stream.getvalue()
    assert re.search(r"ingesting.*2/3.*5 passages embedded", stream.getvalue().split("\r")[-1])
    bar.close()
