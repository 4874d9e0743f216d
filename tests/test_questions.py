"""Learning questions: questions kept on both backends, evidence per site as each reader may see it,
curators' judgements (pinned, hidden, surviving a re-ingest), new since review, `kb eval --questions`
against `kb eval` on the exported BEIR folder, the CLI, and the web pages and API."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest

from cli import main
from conftest import CORPUS
from ingest.pipeline import ingest_paths
from kb import evaluate
from kb.accounts import Accounts
from kb.audit import entries
from kb.collection import KnowledgeBase
from kb.errors import BadRequest, InvalidField, NotFound
from kb.judged import write_beir
from kb.models import VISIBILITIES, DocMeta, Filters
from kb.questions import Questions
from kb.search import Searcher
from kb.settings import Settings
from kb.transfer import copy_collection
from support.backends import sqlite_only

from test_admin import PASSWORD, sign_in, token  # noqa: E402  the curator workspace's helpers
QUESTION = "How are people with lived experience involved in decisions?"
PUBLIC = ("public",)
PARTNERS = ("public", "partners")
SECRET = "listening circles that chose which services to commission"  # only in the partners-only Leeds report
DRAFT = "draft decision panels"  # only in the curators-only Newham note
DOCS = {  # name: (text, site, visibility, published)
    "croydon-2021.md": ("# Residents steering Croydon\n\nResidents with lived experience were involved in decisions: "
                        "they co-chaired the steering group and decided how the grant was spent.\n",
                        "Croydon", "public", "2021-05-01"),
    "croydon-2022.md": ("# Croydon two years on\n\nPeople with lived experience now sit on the board and are "
                        "involved in decisions about funding for community groups.\n", "Croydon", "public",
                        "2022-06-01"),
    "plymouth.md": ("# Lived experience in Plymouth\n\nPeople with lived experience of homelessness are involved in "
                    "decisions about how the drop-in is run.\n", "Plymouth", "public", "2021-09-01"),
    "leeds.md": ("# Peer support in Leeds\n\nPeople with lived experience of mental health problems were involved "
                 f"in decisions through {SECRET}.\n", "Leeds", "partners", "2021-03-01"),
    "newham.md": ("# Newham note\n\nResidents with lived experience will be involved in decisions on the "
                  f"{DRAFT} in the spring.\n", "Newham", "curators", "2022-01-01"),
    "glos.md": ("# Hospital parking\n\nThe hospital car park was resurfaced and new pay machines went in.\n",
                "Gloucestershire", "public", "2020-02-01"),
}


def ingest(kb, folder, names):
    for name in names:
        text, site, visibility, published = DOCS[name]
        (folder / name).write_text(text)
        report = ingest_paths(kb, [folder / name], DocMeta(site=site, visibility=visibility, published=published))
        assert report.ok, report.failed


@pytest.fixture
def collection(tmp_path, model, database_url):
    """The documents above with the real model, on each backend in turn, and a question on them."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        secret_key="a key every node shares" if database_url else "")
    kb = KnowledgeBase.open(settings, model)
    (tmp_path / "docs").mkdir()
    ingest(kb, tmp_path / "docs", [n for n in DOCS if n != "croydon-2022.md"])
    kb.docs = tmp_path / "docs"
    yield kb
    kb.close()


@pytest.fixture
def app(collection):
    from web import create_app

    accounts = Accounts(collection.store)
    accounts.add("cur", "curator", PASSWORD)
    accounts.add("par", "partner", PASSWORD)
    app = create_app(collection.settings, {"TESTING": True}, kb=collection)
    yield app
    app.extensions["worker"].stop()


def passages(evidence) -> list:
    """Every passage a reader is given: pinned, per site, hidden."""
    return [*evidence.pinned, *(h for s in evidence.sites for h in s.hits), *evidence.hidden]


# the questions themselves, on both backends -------------------------------------------------

def test_questions_are_added_edited_archived_and_restored(fake_kb):
    service = Questions(fake_kb)
    first = service.add("  What helps   volunteers stay? ", "For the spring event", sites=["Leeds", "Leeds", " "],
                        types=["learning-report"], date_from="2021", date_to="2022-06", by="maria")
    assert (first.text, first.description, first.sites, first.types) == (
        "What helps volunteers stay?", "For the spring event", ["Leeds"], ["learning-report"])
    assert (first.date_from, first.date_to, first.status, first.created_by, first.reviewed_at) == (
        "2021", "2022-06", "active", "maria", None)
    second = service.add("Who decides how money is spent?")
    assert [q.id for q in service.list()] == [first.id, second.id]
    edited = service.edit(first.id, sites=["Leeds", "Plymouth"], date_to=None)
    assert (edited.sites, edited.date_to, edited.text, edited.types) == (
        ["Leeds", "Plymouth"], None, "What helps volunteers stay?", ["learning-report"])
    assert service.get(first.id) == edited
    service.archive(first.id)
    assert [q.id for q in service.list()] == [second.id]
    assert [q.status for q in service.list(include_archived=True)] == ["archived", "active"]
    assert service.restore(first.id).status == "active"
    assert service.mark_reviewed(second.id).reviewed_at is not None
    assert service.get(second.id).to_dict()["reviewed_at"] == service.get(second.id).reviewed_at
    for call in (lambda: service.get(999), lambda: service.archive(999), lambda: service.mark_reviewed(999),
                 lambda: service.edit(999, text="x")):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(BadRequest, match="no field"):
        service.edit(first.id, status="archived")


@pytest.mark.parametrize("fields, field", [
    ({"text": "   "}, "text"),
    ({"text": "why? " * 101}, "text"),
    ({"description": "x" * 2001}, "description"),
    ({"sites": [f"site {n}" for n in range(21)]}, "sites"),
    ({"types": ["t" * 101]}, "types"),
    ({"date_from": "2021-02-30"}, "date_from"),
    ({"date_to": "last year"}, "date_to"),
    ({"date_from": "2022", "date_to": "2021-12"}, "date_to"),
])
def test_a_question_that_cannot_be_saved_names_its_field(fake_kb, fields, field):
    with pytest.raises(InvalidField) as refused:
        Questions(fake_kb).add(**{"text": "What helps volunteers stay?", **fields})
    assert refused.value.field == field
    assert not Questions(fake_kb).list(include_archived=True)


def test_a_judgement_follows_its_passage_through_a_reingest(fake_kb, tmp_path):
    path = tmp_path / "report.md"
    path.write_text("# Report\n\n" + "Volunteers met every week in the library. " * 30 + "\n\n## Money\n\n"
                    + "The grant paid for a coordinator. " * 30 + "\n")
    ingest_paths(fake_kb, [path], DocMeta(site="Leeds"))
    service = Questions(fake_kb)
    question = service.add("What helps volunteers stay?")
    doc = fake_kb.store.documents()[0]
    first, *_, last = fake_kb.store.chunks_of(doc.id)
    assert service.judge(question.id, first.id, "evidence", by="maria")
    assert service.judge(question.id, last.id, "not_evidence", by="maria")
    assert not service.judge(question.id, last.id, "evidence", by="a reader", source="feedback"), \
        "feedback never overrides a curator"
    path.write_text(path.read_text().replace("coordinator", "part-time coordinator"))  # the money section changes
    ingest_paths(fake_kb, [path], DocMeta(site="Leeds"))
    now = {p.text: p.id for p in fake_kb.store.chunks_of(doc.id)}
    assert now[first.text] != first.id, "a re-ingest made new chunks"
    assert service.verdicts(question.id) == {now[first.text]: "evidence"}, "the changed passage's verdict lapses"
    judged = {j.verdict: j for j in service.judgements(question.id)}
    assert (judged["evidence"].chunk_id, judged["evidence"].source) == (now[first.text], "curator")
    assert judged["not_evidence"].chunk_id == last.id  # its text is gone: the chunk it was when judged
    assert service.judge(question.id, now[first.text], None, by="maria")
    assert not service.judge(question.id, now[first.text], None, by="maria")
    assert [j.verdict for j in service.judgements(question.id)] == ["not_evidence"]
    assert service.judge(question.id, now[first.text], "evidence", by="a reader", source="feedback")
    assert [j.source for j in service.judgements(question.id) if j.verdict == "evidence"] == ["feedback"]
    with pytest.raises(BadRequest):
        service.judge(question.id, now[first.text], "maybe", by="maria")
    with pytest.raises(NotFound):
        service.judge(question.id, 10**6, "evidence", by="maria")


@sqlite_only
def test_questions_and_judgements_go_with_kb_copy(fake_kb, kb_database, tmp_path):
    path = tmp_path / "report.md"
    path.write_text("# Report\n\nVolunteers met every week in the library.\n")
    ingest_paths(fake_kb, [path], DocMeta(site="Leeds"))
    service = Questions(fake_kb)
    question = service.add("What helps volunteers stay?", sites=["Leeds"], by="maria")
    service.archive(service.add("Who decides?").id)
    service.judge(question.id, fake_kb.store.chunks_of(1)[0].id, "evidence", by="maria")
    service.mark_reviewed(question.id)
    target = KnowledgeBase.open(Settings(data_dir=tmp_path / "node", model="fake", database_url=kb_database),
                                fake_kb.embedder)
    copy_collection(fake_kb, target)
    copied = Questions(target)
    assert copied.list(include_archived=True) == service.list(include_archived=True)
    assert copied.judgements(question.id) == service.judgements(question.id)
    assert copied.add("Next?").id == 3, "ids continue after the copied ones"
    target.close()


# evidence as each reader may see it ---------------------------------------------------------

@pytest.mark.model
def test_evidence_per_site_keeps_to_what_each_reader_may_see(collection):
    service, searcher = Questions(collection), Searcher(collection)
    question = service.add(QUESTION)
    seen = {}
    for name, visibility in (("visitor", PUBLIC), ("partner", PARTNERS), ("curator", VISIBILITIES)):
        evidence = service.evidence(searcher, question.id, visibility)
        seen[name] = evidence
        texts = " ".join(h.text for h in passages(evidence))
        assert (SECRET in texts) == (name != "visitor"), name
        assert (DRAFT in texts) == (name == "curator"), name
        assert all(h.visibility in visibility for h in passages(evidence))
    sites = {name: [s.site for s in e.sites] for name, e in seen.items()}
    assert sites["visitor"] == ["Croydon", "Plymouth", "Gloucestershire"], "sites with nothing come last"
    assert sites["partner"] == ["Croydon", "Leeds", "Plymouth", "Gloucestershire"]
    assert sites["curator"] == ["Croydon", "Leeds", "Newham", "Plymouth", "Gloucestershire"]
    visitor = seen["visitor"]
    assert [s.found for s in visitor.sites] == [True, True, False]
    assert all(h.site == s.site for s in visitor.sites for h in s.hits)
    assert visitor.timeline == {"Croydon": {"2021": 1}, "Plymouth": {"2021": 1}}
    assert seen["curator"].timeline["Newham"] == {"2022": 1} and seen["partner"].timeline["Leeds"] == {"2021": 1}
    assert visitor.new == {h.chunk_id for h in visitor.all_hits()}, "never reviewed: everything is new"

    # judged: a partners-only passage pinned, a public one hidden, for every reader
    leeds = next(h for h in seen["curator"].all_hits() if h.site == "Leeds")
    plymouth = next(h for h in seen["curator"].all_hits() if h.site == "Plymouth")
    service.judge(question.id, leeds.chunk_id, "evidence", by="cur")
    service.judge(question.id, plymouth.chunk_id, "not_evidence", by="cur")
    partner = service.evidence(searcher, question.id, PARTNERS)
    assert [h.chunk_id for h in partner.pinned] == [leeds.chunk_id]
    assert leeds.chunk_id not in [h.chunk_id for s in partner.sites for h in s.hits], "pinned: listed once, first"
    assert next(s for s in partner.sites if s.site == "Leeds").pinned == 1
    assert plymouth.chunk_id not in [h.chunk_id for h in partner.all_hits()], "not evidence: hidden"
    assert [h.chunk_id for h in partner.hidden] == [plymouth.chunk_id]
    assert partner.all_hits()[0].chunk_id == leeds.chunk_id
    visitor = service.evidence(searcher, question.id, PUBLIC)
    assert not visitor.pinned and SECRET not in " ".join(h.text for h in passages(visitor))
    assert [s.site for s in visitor.sites if not s.found] == ["Gloucestershire", "Plymouth"]
    assert "Plymouth" not in visitor.timeline


@pytest.mark.model
def test_a_question_looks_only_where_its_filters_say(collection):
    service, searcher = Questions(collection), Searcher(collection)
    question = service.add(QUESTION, sites=["Croydon", "Leeds"], date_from="2021-04")
    evidence = service.evidence(searcher, question.id, VISIBILITIES)
    assert [s.site for s in evidence.sites] == ["Croydon", "Leeds"]
    assert [s.found for s in evidence.sites] == [True, False], "the Leeds report is from March 2021"
    assert {h.site for h in evidence.all_hits()} == {"Croydon"}


@pytest.mark.model
def test_new_evidence_since_the_last_review(collection):
    service, searcher = Questions(collection), Searcher(collection)
    question = service.add(QUESTION)
    assert service.evidence(searcher, question.id, PUBLIC).new
    service.mark_reviewed(question.id)
    before = service.evidence(searcher, question.id, PUBLIC)
    assert before.new == set() and before.timeline["Croydon"] == {"2021": 1}
    time.sleep(1.1)  # timestamps are to the second
    ingest(collection, collection.docs, ["croydon-2022.md"])
    after = service.evidence(searcher, question.id, PUBLIC)
    fresh = [h for h in after.all_hits() if h.chunk_id in after.new]
    assert [h.published for h in fresh] == ["2022-06-01"]
    assert after.timeline["Croydon"] == {"2021": 1, "2022": 1}


# kb eval --questions, and kb eval on the same judgements as a BEIR folder ---------------------

UNTITLED = ("Volunteers in Plymouth said that what kept them going was a regular peer session after each "
            "shift, a named person to ring on a bad day, and never being left alone with a hard case; several "
            "who had stopped came back once the sessions started again.\n\nThe notes were kept by the "
            "drop-in's coordinator.\n")  # a first paragraph too long to be a title: the file name gives one


def judge_as_a_curator(kb, questions) -> None:
    """Each question's best hit judged not evidence, the next and the last evidence."""
    service, searcher = Questions(kb), Searcher(kb)
    for question in questions:
        hits = searcher.search(question.text, k=10, filters=question.filters(VISIBILITIES)).hits
        assert hits, question.text
        if len(hits) > 1:
            service.judge(question.id, hits[0].chunk_id, "not_evidence", by="cur")
        for hit in {hits[min(1, len(hits) - 1)].chunk_id, hits[-1].chunk_id}:
            service.judge(question.id, hit, "evidence", by="cur")


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.model
def test_eval_questions_agrees_with_kb_eval_on_the_exported_folder(tmp_path, capsys, model, database_url):
    """The sample corpus (headings, PDF pages, sites, types, dates), a document whose title comes from
    its file name, a retired one, and questions with sites or dates: `kb eval` on the export ranks
    every question's passages as the collection does, so every figure agrees."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    where = ["--data", str(settings.data_dir)] + (["--database-url", database_url] if database_url else [])
    kb = KnowledgeBase.open(settings, model)
    assert ingest_paths(kb, [CORPUS]).ok
    (tmp_path / "plymouth-volunteer-notes.txt").write_text(UNTITLED)
    assert ingest_paths(kb, [tmp_path / "plymouth-volunteer-notes.txt"], DocMeta(site="Plymouth")).ok
    assert kb.store.documents(Filters(site=["Plymouth"]))[-1].title == "plymouth-volunteer-notes"
    kb.set_status(kb.store.find(str((CORPUS / "docs" / "faq.txt").resolve())).id, "retired")
    service = Questions(kb)
    with open(CORPUS / "questions.tsv", encoding="utf-8") as fh:
        asked = [row["question"] for row in csv.DictReader(fh, delimiter="\t")]
    for n, text in enumerate(asked):  # a third each: no filters, three sites, a date
        service.add(text, **[{}, {"sites": ["Coventry", "Newham", "Programme"]}, {"date_from": "2021"}][n % 3])
    judge_as_a_curator(kb, service.list())

    assert main([*where, "eval", "--questions", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    folder = tmp_path / "beir"
    assert main([*where, "questions", "export-beir", str(folder)]) == 0
    assert "17 documents (and 1 retired), 15 questions" in capsys.readouterr().out
    assert main([*where, "eval", str(folder), "--json"]) == 0
    theirs = json.loads(capsys.readouterr().out)
    assert ours["queries"] == theirs["queries"] == 15
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "ndcg@10_ci95"):
        assert ours[key] == theirs[key], key
    assert 0 < ours["ndcg@10"] < 1
    assert set(ours["sites"]) <= {"Programme", "Coventry", "Croydon", "Gloucestershire", "Leeds", "Newham",
                                  "Plymouth"} and all(0 <= s["ndcg@10"] <= 1 for s in ours["sites"].values())
    assert [q["text"] for q in ours["questions"]] == asked

    # not by chance: each question's passages come back in the same order, from the same passages
    records = jsonl(folder / "corpus.jsonl")
    assert sum(bool(p["heading"]) for r in records for p in r["kb"]["passages"]) > 50
    assert sum("kb" in q for q in jsonl(folder / "queries.jsonl")) == 10
    data = evaluate.read_beir(folder)
    built = evaluate.build(settings, data, embedder=model)
    live, there = Searcher(kb), Searcher(built)
    for question in service.list():
        here = live.search(question.text, k=100, filters=question.filters(VISIBILITIES)).hits
        exported = there.search(question.text, k=100, filters=data.filters.get(str(question.id))).hits
        assert [(str(h.doc_id), h.ordinal) for h in here] == [(h.source[5:], h.ordinal) for h in exported]
        assert [h.score for h in here] == pytest.approx([h.score for h in exported], abs=1e-5)
    built.close()
    kb.close()

    assert main([*where, "eval", "--questions"]) == 0
    text = capsys.readouterr().out
    assert "nDCG@10 per site" in text and "15 questions with evidence judged" in text


def test_the_export_carries_passages_titles_filters_and_retired_documents(fake_kb, tmp_path):
    """Each record carries its document's passages and the title they were embedded with, which
    `kb eval` stores as they are (the same embedding texts); `--rechunk` cuts the text afresh."""
    docs = tmp_path / "docs"
    docs.mkdir()
    files = {"report.md": "# Report\n\n## Volunteers\n\nPeer sessions kept volunteers.\n\n## Money\n\n"
                          "The grant paid for a coordinator.\n",
             "notes.txt": UNTITLED, "plan.md": "A plan for the garden.\n",
             "old.md": "# Old\n\nVolunteers left.\n"}
    for name, text in files.items():
        (docs / name).write_text(text)
        title = "Garden" if name == "plan.md" else None  # a title of its own, not a heading's
        ingest_paths(fake_kb, [docs / name], DocMeta(title=title, site="Leeds", doc_type="report",
                                                     published="2021-05-01", tags=["volunteers"]))
    ids = {Path(d.source).name: d.id for d in fake_kb.store.documents()}
    fake_kb.update(ids["plan.md"], {"title": "The garden plan"})  # search sees it; the vectors stay
    fake_kb.set_status(ids["old.md"], "retired")
    service = Questions(fake_kb)
    question = service.add("What kept volunteers?", sites=["Leeds"], date_from="2021")
    service.judge(question.id, fake_kb.store.chunks_of(ids["report.md"])[0].id, "evidence", by="cur")

    counts = write_beir(fake_kb, tmp_path / "beir")
    assert counts == {"documents": 3, "queries": 1, "judgements": 1, "retired": 1, "retitled": 1}
    records = {r["title"]: r for r in jsonl(tmp_path / "beir" / "corpus.jsonl")}
    report = records["Report"]
    assert report["kb"]["passages"] == [
        {"text": p.text, "heading": p.heading, "page": p.page, "start": p.char_start, "end": p.char_end,
         "tokens": p.tokens} for p in fake_kb.store.chunks_of(ids["report.md"])]
    assert {p["heading"] for p in report["kb"]["passages"]} >= {"Report > Volunteers", "Report > Money"}
    assert {k: report["kb"][k] for k in ("site", "doc_type", "published", "tags", "embedded_title")} == \
        {"site": "Leeds", "doc_type": "report", "published": "2021-05-01", "tags": ["volunteers"],
         "embedded_title": "Report"}
    assert records["notes"]["kb"]["embedded_title"] == "", "a title made up from the file name is not embedded"
    assert records["The garden plan"]["kb"]["embedded_title"] == "The garden plan"  # the old one is not kept
    assert [r["title"] for r in jsonl(tmp_path / "beir" / "kb-retired.jsonl")] == ["Old"]
    assert jsonl(tmp_path / "beir" / "queries.jsonl") == [
        {"_id": str(question.id), "text": question.text, "kb": {"filters": {"site": ["Leeds"], "date_from": "2021"}}}]

    data = evaluate.read_beir(tmp_path / "beir")
    assert data.filters == {str(question.id): question.filters(VISIBILITIES)}
    built = evaluate.build(fake_kb.settings, data, embedder=fake_kb.embedder)
    stored = {d.source[5:]: d for d in built.store.documents(include_retired=True)}
    assert len(stored) == 4
    assert len(fake_kb.store.documents(include_retired=True)) == 4, "PostgreSQL: the eval schema has tables of its own"
    for doc_id in ids.values():
        ours, theirs = fake_kb.store.get(doc_id), stored[str(doc_id)]
        assert (theirs.title, theirs.site, theirs.doc_type, theirs.published, theirs.tags, theirs.status) == \
            (ours.title, ours.site, ours.doc_type, ours.published, ours.tags, ours.status)
        assert [p[1:] for p in built.store.chunks_of(theirs.id)] == [p[1:] for p in fake_kb.store.chunks_of(doc_id)]
        same = doc_id != ids["plan.md"]  # retitled after embedding: embedded under the new title there
        assert (built.store.embedded_hashes(theirs.id) == fake_kb.store.embedded_hashes(doc_id)) == same
    built.close()
    rechunked = evaluate.build(fake_kb.settings, data, embedder=fake_kb.embedder, rechunk=True)
    report = next(d for d in rechunked.store.documents() if d.title == "Report")
    assert {p.heading for p in rechunked.store.chunks_of(report.id)} == {""}, "plain text, no headings"
    rechunked.close()


# the command line -----------------------------------------------------------------------------

@pytest.mark.model
def test_questions_on_the_command_line(collection, capsys):
    where = ["--data", str(collection.settings.data_dir)]
    if collection.settings.database_url:
        where += ["--database-url", collection.settings.database_url]

    def kb(*args):
        code = main([*where, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = kb("questions", "add", QUESTION, "--description", "For the spring event", "--json")
    added = json.loads(out)
    assert code == 0 and (added["text"], added["created_by"], added["sites"]) == (QUESTION, "cli", [])
    assert kb("questions", "add", "Who runs the allotments?", "--site", "Croydon", "--from", "2021")[0] == 0
    code, out, _ = kb("questions", "list")
    assert "every site" in out and "Croydon; from 2021" in out and "not reviewed" in out
    code, out, _ = kb("questions", "show", str(added["id"]))
    assert "Nothing on this question yet from: Gloucestershire" in out and DRAFT in " ".join(out.split())
    chunk = int(re.search(r"passage (\d+) \[new\]", out).group(1))
    assert kb("questions", "judge", str(added["id"]), str(chunk), "evidence")[1].startswith(f"passage {chunk} judged")
    code, out, _ = kb("questions", "show", str(added["id"]), "--json")
    assert [h["chunk_id"] for h in json.loads(out)["pinned"]] == [chunk]
    assert "reviewed at" in kb("questions", "reviewed", str(added["id"]))[1]
    assert "[new]" not in kb("questions", "show", str(added["id"]))[1]
    code, out, _ = kb("questions", "edit", str(added["id"]), "--site", "Leeds", "--json")
    assert json.loads(out)["sites"] == ["Leeds"]
    assert kb("questions", "archive", str(added["id"]))[1] == f"question {added['id']} is archived\n"
    assert QUESTION not in kb("questions", "list")[1] and QUESTION in kb("questions", "list", "--all")[1]
    assert [e.action for e in entries(collection.store) if e.action.startswith("question")] == [
        "question_archive", "question_edit", "question_add", "question_add"]
    code, _, err = kb("questions", "add", "Why?", "--from", "June")
    assert code == 1 and "from must be a date" in err
    code, _, err = kb("questions", "show", "99")
    assert code == 1 and "no question 99" in err
    code, _, err = kb("eval")
    assert code == 1 and "--questions" in err


# the web pages and the API --------------------------------------------------------------------

@pytest.mark.model
def test_readers_see_questions_with_only_what_they_may_see(app):
    question = Questions(app.extensions["kb"]).add(QUESTION, by="cur")
    anonymous, partner = app.test_client(), sign_in(app, "par")
    for client, secret_shown in ((anonymous, False), (partner, True)):
        listing = client.get("/questions").get_data(as_text=True)
        assert QUESTION in listing and "Add a question" not in listing
        page = client.get(f"/questions/{question.id}").get_data(as_text=True)
        assert (SECRET in page) == secret_shown and DRAFT not in page
        assert "Nothing from Gloucestershire on this question yet." in page
        assert '<caption id="timeline-caption">' in page and '<th scope="row">Croydon</th>' in page
        assert 'name="verdict"' not in page, "read-only for readers"
        data = client.get(f"/api/questions/{question.id}").get_json()
        assert (SECRET in json.dumps(data)) == secret_shown and DRAFT not in json.dumps(data)
        assert "hidden" not in data and "created_by" not in data["question"]
        assert [s["site"] for s in data["sites"]][-1] == "Gloucestershire" and not data["sites"][-1]["found"]
        listed = client.get("/api/questions").get_json()["questions"]
        assert [q["text"] for q in listed] == [QUESTION] and "created_by" not in listed[0]
    assert anonymous.get("/api/questions/999").status_code == 404
    assert anonymous.get("/api/questions?archived=1").status_code == 400
    assert anonymous.get(f"/api/questions/{question.id}?per_site=11").status_code == 400


@pytest.mark.model
def test_curators_add_judge_review_edit_and_archive_on_the_web(app):
    curator, partner = sign_in(app, "cur"), sign_in(app, "par")
    form = {"csrf_token": token(curator, "/questions"), "text": QUESTION, "description": "Spring event",
            "site": ["Croydon", "Leeds"], "from": "2021"}
    refused = curator.post("/questions", data={**form, "text": " ", "from": "June"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "There is a problem" in page
    assert '<a href="#q-text">a question needs its text</a>' in page and 'aria-invalid="true"' in page
    assert 'value="June"' in page and 'value="Leeds" checked' in page, "what was sent is kept"
    made = curator.post("/questions", data=form)
    assert made.status_code == 302
    url = made.headers["Location"]
    question_id = int(url.rsplit("/", 1)[1])
    page = curator.get(url).get_data(as_text=True)
    assert "not reviewed yet" in page and 'class="tag tag-new">New</strong>' in page
    chunk = int(re.search(r'name="chunk_id" value="(\d+)"', page).group(1))
    judged = curator.post(f"/questions/{question_id}/judge",
                          data={"csrf_token": form["csrf_token"], "chunk_id": chunk, "verdict": "evidence"})
    assert judged.status_code == 302 and judged.headers["Location"].endswith(f"#passage-{chunk}")
    data = curator.get(f"/api/questions/{question_id}").get_json()
    assert [h["chunk_id"] for h in data["pinned"]] == [chunk] and data["question"]["created_by"] == "cur"
    assert [s["site"] for s in data["sites"]] == ["Croydon", "Leeds"]
    curator.post(f"/questions/{question_id}/reviewed", data={"csrf_token": form["csrf_token"]})
    page = curator.get(url).get_data(as_text=True)
    assert "Nothing new since the last review." in page and "tag-new" not in page
    edited = curator.post(f"/questions/{question_id}/edit", data={**form, "site": ["Plymouth"], "to": "2020"})
    assert edited.status_code == 400 and "the dates are the wrong way round" in edited.get_data(as_text=True)
    curator.post(f"/questions/{question_id}/edit", data={**form, "site": ["Plymouth"]})
    assert curator.get(f"/api/questions/{question_id}").get_json()["question"]["sites"] == ["Plymouth"]
    curator.post(f"/questions/{question_id}/archive", data={"csrf_token": form["csrf_token"]})
    assert partner.get(url).status_code == 404 and partner.get(f"/api/questions/{question_id}").status_code == 404
    assert "Archived" in curator.get("/questions").get_data(as_text=True)
    assert curator.get(url).status_code == 200
    assert [q["status"] for q in curator.get("/api/questions").get_json()["questions"]] == ["archived"]
    curator.post(f"/questions/{question_id}/restore", data={"csrf_token": form["csrf_token"]})
    assert partner.get(url).status_code == 200
    actions = [e.action for e in entries(app.extensions["kb"].store) if e.action.startswith("question")]
    assert actions == ["question_restore", "question_archive", "question_edit", "question_add"]


WRITES = ["/questions", "/questions/{id}/edit", "/questions/{id}/judge", "/questions/{id}/reviewed",
          "/questions/{id}/archive", "/questions/{id}/restore"]


@pytest.mark.model
def test_only_curators_write_and_only_with_the_forms_token(app):
    service = Questions(app.extensions["kb"])
    question = service.add(QUESTION, by="cur")
    chunk = service.evidence(app.extensions["searcher"], question.id, VISIBILITIES).all_hits()[0].chunk_id
    data = {"text": "Changed?", "chunk_id": chunk, "verdict": "evidence"}
    visitor, partner, curator = app.test_client(), sign_in(app, "par"), sign_in(app, "cur")
    forms = {"visitor": token(visitor), "partner": token(partner, "/questions")}
    for path in WRITES:
        url = path.format(id=question.id)
        assert app.test_client().post(url, data=data).status_code == 400, f"{url}: no token"
        signed_out = visitor.post(url, data={**data, "csrf_token": forms["visitor"]})
        assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"], url
        assert partner.post(url, data={**data, "csrf_token": forms["partner"]}).status_code == 403, url
        assert curator.post(url, data=data).status_code == 400, f"{url}: a curator's form without its token"
        assert curator.post(url, data={**data, "csrf_token": "forged"}).status_code == 400, url
    assert [(q.text, q.status, q.reviewed_at) for q in service.list(include_archived=True)] == [
        (QUESTION, "active", None)]
    assert service.judgements(question.id) == []
