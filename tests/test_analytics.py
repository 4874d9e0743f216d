"""Search analytics and feedback on results: what is searched (per week, normalized), what finds
nothing or only weak matches, what is opened, readers' marks; never who. Real model, both backends,
the web through Flask's test client."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from cli import main
from ingest.pipeline import ingest_paths
from kb.accounts import Accounts
from kb.analytics import Analytics, build_report, iso_week, query_key, today
from kb.collection import KnowledgeBase
from kb.models import DocMeta
from kb.settings import Settings
from kb.storage.analytics import DayCount, FeedbackCount, FeedbackRecord, OpenCount, OpenRecord, SearchRecord
from support.db import rows

PASSWORD = "correct horse battery"
READER = "zanzibar-reader"  # a name no query, title or passage holds
ADDRESS = "203.0.113.9"
AGENT = "kb-test-agent/7.3"
TABLES = {"search_log": {"id", "day", "query", "mode", "results", "best"},
          "result_opens": {"id", "day", "query", "doc_id", "chunk_id"},
          "feedback": {"id", "day", "query", "doc_id", "chunk_id", "helpful", "question_id"}}


def make_site(tmp_path, model, database_url, **settings_changes):
    """Three documents (public, partners, curators), a curator and a partner, on a backend."""
    from web import create_app

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "public.md").write_text("# Allotments in Croydon\n\nResidents grow vegetables together on allotments.\n")
    (folder / "partners.md").write_text("# Peer support in Leeds\n\nPeer supporters with lived experience of mental "
                                        "health problems ran listening circles.\n")
    (folder / "curators.md").write_text("# Budget notes\n\nThe grant budget for phase two, line by line.\n")
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        secret_key="a key every node shares" if database_url else "", **settings_changes)
    kb = KnowledgeBase.open(settings, model)
    for name, site, visibility in (("public", "Croydon", "public"), ("partners", "Leeds", "partners"),
                                   ("curators", "Leeds", "curators")):
        ingest_paths(kb, [folder / f"{name}.md"], DocMeta(site=site, visibility=visibility))
    accounts = Accounts(kb.store)
    accounts.add("cur", "curator", PASSWORD)
    accounts.add(READER, "partner", PASSWORD)
    return create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=kb)


@pytest.fixture
def site(tmp_path, model, database_url):
    return make_site(tmp_path, model, database_url)


def token(client, url="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def sign_in(app, name):
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=AGENT)
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token(client)})
    assert response.status_code == 302
    return client


def doc_id(app, title: str) -> int:
    return next(d.id for d in app.extensions["kb"].store.documents() if d.title == title)


def recorded(app) -> dict[str, list[dict]]:
    """Every row of the three analytics tables, every column, once the queue is written."""
    assert app.extensions["analytics"].flush()
    store = app.extensions["kb"].store
    out = {}
    for table in TABLES:
        with store.db.read() as conn:
            result = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")
            out[table] = [dict(r._mapping) for r in result]
    return out


def feedback_form(html: str, chunk_id: int | None = None) -> dict:
    """The fields of a result's helpful / not helpful form, as a browser would send them."""
    forms = re.findall(r'<form method="post" action="/feedback">(.*?)</form>', html, re.S)
    for form in forms:
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        if chunk_id is None or fields["chunk_id"] == str(chunk_id):
            return {k: v.replace("&amp;", "&") for k, v in fields.items() if k != "helpful"}
    raise AssertionError("no feedback form")


def test_searches_are_counted_per_week_normalized_and_once_per_search(site):
    anonymous = site.test_client()
    for q in ("Allotments in Croydon", "  allotments\tin CROYDON "):
        assert anonymous.get("/", query_string={"q": q}).status_code == 200
    assert anonymous.get("/api/search", query_string={"q": "ALLOTMENTS in croydon"}).status_code == 200
    assert anonymous.get("/", query_string={"q": "allotments in croydon", "page": 2}).status_code == 200  # paging
    assert anonymous.get("/", query_string={"q": "allotments in croydon", "group": "passage", "k": 1,
                                             "page": 3}).status_code == 200
    assert anonymous.get("/api/search", query_string={"q": "allotments in croydon", "offset": 10}).status_code == 200
    assert anonymous.get("/").status_code == 200  # the overview, no search
    assert anonymous.get("/healthz").status_code == 200
    searches = recorded(site)["search_log"]
    assert [(r["query"], r["mode"], r["results"]) for r in searches] == [("allotments in croydon", "hybrid", 1)] * 3
    assert all(r["best"] > 0.3 and r["day"] == today().isoformat() for r in searches)

    earlier = today() - timedelta(days=7)  # last week: counted in its own week
    site.extensions["kb"].store.analytics.add(searches=[SearchRecord(earlier.isoformat(), "allotments in croydon",
                                                                     "hybrid", 1, 0.6)])
    report = site.extensions["analytics"].report()
    this_week, last_week = report.weeks
    assert (this_week.week, last_week.week) == (iso_week(today().isoformat()), iso_week(earlier.isoformat()))
    assert [(q.query, q.searches) for q in this_week.queries] == [("allotments in croydon", 3)]
    assert [(q.query, q.searches) for q in last_week.queries] == [("allotments in croydon", 1)]
    assert report.searches == 4 and report.distinct == 1


def test_queries_that_find_nothing_or_only_weak_matches_are_listed(site):
    client = site.test_client()
    client.get("/", query_string={"q": "xylophone quantum zebra"})  # no passage shares a word or a meaning
    client.get("/", query_string={"q": "together"})  # shares a word with one passage, nothing of its meaning
    client.get("/", query_string={"q": "Allotments in Croydon"})
    searches = {r["query"]: r for r in recorded(site)["search_log"]}
    assert searches["xylophone quantum zebra"]["results"] == 0
    assert searches["together"]["results"] == 1 and searches["together"]["best"] < 0.3
    gaps = {q.query: (q.searches, q.nothing, q.weak) for q in site.extensions["analytics"].report().gaps}
    assert gaps == {"xylophone quantum zebra": (1, 1, 0), "together": (1, 0, 1)}


def test_result_links_carry_the_query_and_opens_are_recorded_only_for_visible_documents(site):
    public, partners = doc_id(site, "Allotments in Croydon"), doc_id(site, "Peer support in Leeds")
    anonymous, partner = site.test_client(), sign_in(site, READER)
    html = anonymous.get("/", query_string={"q": "Allotments in Croydon"}).get_data(as_text=True)
    link = re.search(rf'href="(/doc/{public}\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "q=Allotments+in+Croydon" in link and "hl=0" in link
    assert anonymous.get(link).status_code == 200
    assert anonymous.get(f"/doc/{public}").status_code == 200  # not from a search: not an open
    assert anonymous.get(f"/doc/{partners}?hl=0&q=peer+support").status_code == 404  # not theirs to see
    assert partner.get(f"/doc/{partners}?hl=0&q=Peer+Support").status_code == 200
    assert partner.get(f"/doc/{doc_id(site, 'Budget notes')}?q=budget").status_code == 404
    chunk = site.extensions["kb"].store.chunks_of(public)[0].id
    opens = [(r["query"], r["doc_id"], r["chunk_id"]) for r in recorded(site)["result_opens"]]
    partner_chunk = site.extensions["kb"].store.chunks_of(partners)[0].id
    assert opens == [("allotments in croydon", public, chunk), ("peer support", partners, partner_chunk)]
    report = site.extensions["analytics"].report()
    opened = {q.query: [(o.doc_id, o.title, o.opens) for o in q.opened] for q in report.queries}
    assert opened["allotments in croydon"] == [(public, "Allotments in Croydon", 1)]


def test_analytics_never_store_who_searched(site):
    """A signed-in reader searches, opens a result and marks it: no column of any row written
    holds their name, id, session, address or browser."""
    partner = sign_in(site, READER)
    partners = doc_id(site, "Peer support in Leeds")
    html = partner.get("/", query_string={"q": "peer support circles"}).get_data(as_text=True)
    partner.get("/api/search", query_string={"q": "listening circles"})
    partner.get(f"/doc/{partners}?hl=0&q=peer+support+circles")
    assert partner.post("/feedback", data={**feedback_form(html), "helpful": "1"}).status_code == 302
    written = recorded(site)
    assert {table: len(found) for table, found in written.items()} == {"search_log": 2, "result_opens": 1, "feedback": 1}
    store = site.extensions["kb"].store
    user = Accounts(store).get(READER)
    secrets = {READER, ADDRESS, AGENT, *(str(v) for row in rows(store, "SELECT * FROM sessions") for v in row
                                          if isinstance(v, str) and len(v) > 8)}
    with partner.session_transaction() as session:
        secrets |= {str(v) for v in session.values() if isinstance(v, str)}
    for table, found in written.items():
        for row in found:
            assert set(row) == TABLES[table], f"{table} has columns {sorted(set(row) - TABLES[table])}"
            for column, value in row.items():
                text = str(value)
                assert not any(secret in text for secret in secrets), (table, column, value)
                if column in ("query", "mode", "day"):
                    assert str(user.id) != text
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", row["day"]) for found in written.values() for row in found)


def test_feedback_needs_sign_in_and_csrf(site):
    html = site.test_client().get("/", query_string={"q": "allotments"}).get_data(as_text=True)
    assert "/feedback" not in html  # no buttons for visitors who have not signed in
    chunk = site.extensions["kb"].store.chunks_of(doc_id(site, "Allotments in Croydon"))[0].id
    fields = {"q": "allotments", "chunk_id": str(chunk), "helpful": "1", "next": "/?q=allotments"}
    anonymous = site.test_client()
    assert anonymous.post("/feedback", data=fields).status_code == 400  # no token
    assert anonymous.post("/feedback", data={**fields, "csrf_token": token(anonymous)}).status_code == 401
    partner = sign_in(site, READER)
    response = partner.post("/feedback", data=fields)
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert recorded(site)["feedback"] == []


@pytest.mark.parametrize("title,retire", [("Budget notes", False), ("Allotments in Croydon", True),
                                          ("(no such passage)", False)])
def test_feedback_refuses_a_passage_the_reader_may_not_see(site, title, retire):
    store = site.extensions["kb"].store
    if title.startswith("("):
        chunk = 10**9
    else:
        chunk = store.chunks_of(doc_id(site, title))[0].id
        if retire:
            site.extensions["kb"].set_status(doc_id(site, title), "retired")
    partner = sign_in(site, READER)
    response = partner.post("/feedback", data={"q": "budget", "chunk_id": str(chunk), "helpful": "0",
                                                "csrf_token": token(partner, "/")})
    assert response.status_code == 404
    assert recorded(site)["feedback"] == []


@pytest.mark.parametrize("field,value", [("helpful", "yes"), ("chunk_id", "one"), ("chunk_id", ""), ("q", "   "),
                                         ("question_id", "x")])
def test_feedback_refuses_a_malformed_form(site, field, value):
    partner = sign_in(site, READER)
    chunk = site.extensions["kb"].store.chunks_of(doc_id(site, "Allotments in Croydon"))[0].id
    data = {"q": "allotments", "chunk_id": str(chunk), "helpful": "1", "csrf_token": token(partner, "/"), field: value}
    assert partner.post("/feedback", data=data).status_code == 400
    assert recorded(site)["feedback"] == []


def test_feedback_goes_back_to_the_passage_and_shows_beside_the_query_for_curators(site):
    partner = sign_in(site, READER)
    url = "/?q=allotments+croydon"
    html = partner.get(url).get_data(as_text=True)
    public = doc_id(site, "Allotments in Croydon")
    chunk = site.extensions["kb"].store.chunks_of(public)[0].id
    form = feedback_form(html, chunk)
    assert form["next"] == url and form["q"] == "allotments croydon"
    assert re.search(r'<button type="submit" class="small secondary" name="helpful" value="1">Helpful'
                     r'<span class="visually-hidden">: Allotments in Croydon</span></button>', html)
    response = partner.post("/feedback", data={**form, "helpful": "1"})
    assert response.status_code == 302 and response.headers["Location"] == f"{url}#feedback-{chunk}"
    back = partner.get(response.headers["Location"]).get_data(as_text=True)
    assert '<p class="feedback-done" role="status">Thank you: you marked this passage helpful.</p>' in back
    assert "Thank you" not in partner.get(url).get_data(as_text=True)  # once
    partner.post("/feedback", data={**form, "helpful": "0", "next": "https://evil.example/"})
    searches = recorded(site)["search_log"]
    assert len(searches) == 2  # the search, and seeing it again later; not the page come back to

    curator = sign_in(site, "cur")
    page = curator.get("/admin/analytics")
    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.get_data(as_text=True)).split())
    assert "allotments croydon 2 0 — 1 helpful, 1 not helpful" in text
    assert "Feedback on results" in text and "allotments croydon Allotments in Croydon 1 1" in text
    marks = recorded(site)["feedback"]
    assert [(m["query"], m["doc_id"], m["chunk_id"], bool(m["helpful"]), m["question_id"]) for m in marks] == [
        ("allotments croydon", public, chunk, True, None), ("allotments croydon", public, chunk, False, None)]


def test_the_curator_page_lists_a_query_that_found_nothing_and_is_for_curators_only(site):
    site.test_client().get("/", query_string={"q": "xylophone quantum zebra"})
    anonymous = site.test_client().get("/admin/analytics")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert sign_in(site, READER).get("/admin/analytics").status_code == 403
    page = sign_in(site, "cur").get("/admin/analytics?days=7").get_data(as_text=True)
    gaps = page.split('id="gaps-heading"')[1].split("</table>")[0]
    assert 'href="/?q=xylophone+quantum+zebra">xylophone quantum zebra</a></th><td>1</td><td>1</td><td>0</td>' in gaps
    assert '<a href="/admin/analytics" aria-current="page">Search analytics</a>' in page
    assert "from Monday" in page and "7 days" in page


def test_recording_off_records_nothing(tmp_path, model, database_url):
    site = make_site(tmp_path, model, database_url, analytics=False)
    public = doc_id(site, "Allotments in Croydon")
    chunk = site.extensions["kb"].store.chunks_of(public)[0].id
    partner = sign_in(site, READER)
    html = partner.get("/", query_string={"q": "allotments"}).get_data(as_text=True)
    assert "/feedback" not in html
    partner.get("/api/search", query_string={"q": "allotments"})
    partner.get(f"/doc/{public}?hl=0&q=allotments")
    response = partner.post("/feedback", data={"q": "allotments", "chunk_id": str(chunk), "helpful": "1",
                                                "csrf_token": token(partner, "/")})
    assert response.status_code == 404
    assert recorded(site) == {"search_log": [], "result_opens": [], "feedback": []}
    page = sign_in(site, "cur").get("/admin/analytics").get_data(as_text=True)
    assert "Recording is off" in page


def test_retention_deletes_old_rows_at_most_once_a_day(fake_kb):
    store, now = fake_kb.store, [date(2025, 6, 30)]
    analytics = Analytics(store, keep_days=180, clock=lambda: now[0])

    def add_old(day: date):
        store.analytics.add(searches=[SearchRecord(day.isoformat(), "old", "hybrid", 0, None)],
                            opens=[OpenRecord(day.isoformat(), "old", 1, None)],
                            marks=[FeedbackRecord(day.isoformat(), "old", 1, 1, True, None)])

    def count(table):
        return rows(store, f"SELECT count(*) FROM {table}")[0][0]

    oldest_kept = now[0] - timedelta(days=179)
    add_old(oldest_kept - timedelta(days=1))
    add_old(oldest_kept)
    analytics.searched(_result("new"))
    assert analytics.flush()
    assert [r[0] for r in rows(store, "SELECT day FROM search_log ORDER BY day")] == [oldest_kept.isoformat(), "2025-06-30"]
    assert [r[0] for r in rows(store, "SELECT day FROM result_opens")] == [oldest_kept.isoformat()]
    add_old(date(2020, 1, 1))  # later the same day: no second sweep until tomorrow
    analytics.searched(_result("newer"))
    assert analytics.flush() and count("search_log") == 4
    now[0] += timedelta(days=1)  # the next day, the first write sweeps: the day that was oldest is gone too
    analytics.searched(_result("next day"))
    assert analytics.flush()
    assert [r[0] for r in rows(store, "SELECT query FROM search_log ORDER BY id")] == ["new", "newer", "next day"]
    assert count("result_opens") == 0 and count("feedback") == 0


def test_the_report_sweeps_too_even_with_recording_off(fake_kb):
    store = fake_kb.store
    store.analytics.add(searches=[SearchRecord("2001-01-01", "ancient", "hybrid", 0, None)])
    report = Analytics(store, enabled=False, keep_days=30).report()
    assert report.searches == 0 and rows(store, "SELECT count(*) FROM search_log") == [(0,)]


def _result(query: str):
    from kb.models import SearchResult

    return SearchResult(query=query, mode="hybrid", took_ms=1.0, hits=[], total=0)


def test_kb_analytics_prints_text_and_json(site, capsys):
    client = site.test_client()
    client.get("/", query_string={"q": "xylophone quantum zebra"})
    client.get("/", query_string={"q": "Allotments in Croydon"})
    client.get(f"/doc/{doc_id(site, 'Allotments in Croydon')}?hl=0&q=Allotments+in+Croydon")
    assert site.extensions["analytics"].flush()
    settings = site.extensions["kb"].settings
    where = ["--data", str(settings.data_dir)] + (["--database-url", settings.database_url] if settings.database_url else [])
    assert main([*where, "analytics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 searches of 2 queries from ")
    assert "found nothing or only weak matches:\n     1 × 'xylophone quantum zebra'; nothing 1, weak 0; last " in out
    assert "   1 × 'allotments in croydon'; opened 'Allotments in Croydon' (1)" in out
    assert main([*where, "analytics", "--days", "30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["days"] == 30 and report["searches"] == 2 and report["weak_below"] == 0.3
    assert [g["query"] for g in report["gaps"]] == ["xylophone quantum zebra"]
    assert report["weeks"][0]["queries"][0]["opened"][0]["title"] == "Allotments in Croydon"
    assert main([*where, "analytics", "--days", "0"]) == 1
    assert "days must be at least 1" in capsys.readouterr().err


def test_kb_analytics_refuses_a_folder_without_a_collection(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none"), "analytics"]) == 1
    assert "no knowledge base" in capsys.readouterr().err


def test_the_report_groups_by_iso_week_and_sorts_gaps_pure():
    daily = [DayCount("2024-12-29", "volunteers", 2, 0, 0),  # a Sunday: week 52 of 2024
             DayCount("2024-12-30", "volunteers", 1, 0, 0),  # the Monday after: week 1 of 2025
             DayCount("2024-12-30", "prisons", 3, 3, 0), DayCount("2025-01-02", "housing", 2, 0, 1)]
    opens = [OpenCount("2024-12-30", "volunteers", 6, "Plymouth report", 2),
             OpenCount("2024-12-29", "volunteers", 6, "Plymouth report", 1),
             OpenCount("2024-12-29", "volunteers", 7, None, 4)]
    marks = [FeedbackCount("2024-12-30", "housing", 3, 11, "Housing", 2, 1, 2)]
    report = build_report(7, "2024-12-27", "2025-01-02", daily, opens, marks)
    assert [(w.week, w.starts, w.searches) for w in report.weeks] == [("2025-W01", "2024-12-30", 6),
                                                                      ("2024-W52", "2024-12-23", 2)]
    assert [(q.query, q.searches) for q in report.weeks[0].queries] == [("prisons", 3), ("housing", 2), ("volunteers", 1)]
    assert [(g.query, g.nothing, g.weak) for g in report.gaps] == [("prisons", 3, 0), ("housing", 0, 1)]
    volunteers = next(q for q in report.queries if q.query == "volunteers")
    assert [(o.doc_id, o.opens) for o in volunteers.opened] == [(7, 4), (6, 3)] and volunteers.last == "2024-12-30"
    housing = next(q for q in report.queries if q.query == "housing")
    assert (housing.helpful, housing.not_helpful) == (1, 2)
    assert report.searches == 8 and report.distinct == 3
    assert query_key("  Volunteers\u00a0IN\tPlymouth ") == "volunteers in plymouth"


def test_a_helpful_mark_on_a_questions_passage_becomes_a_judgement_unless_a_curator_judged_it(site):
    from kb.questions import Questions

    kb = site.extensions["kb"]
    questions = Questions(kb)
    question = questions.add("How do residents grow food together?", by="cur")
    public, partners = doc_id(site, "Allotments in Croydon"), doc_id(site, "Peer support in Leeds")
    allotments, peers = kb.store.chunks_of(public)[0].id, kb.store.chunks_of(partners)[0].id
    questions.judge(question.id, peers, "not_evidence", by="cur")
    partner = sign_in(site, READER)
    page = f"/questions/{question.id}"
    html = partner.get(page).get_data(as_text=True)
    form = feedback_form(html, allotments)
    assert form == {"csrf_token": form["csrf_token"], "q": question.text, "chunk_id": str(allotments),
                    "question_id": str(question.id), "next": page}
    response = partner.post("/feedback", data={**form, "helpful": "1"})
    assert response.headers["Location"] == f"{page}#feedback-{allotments}"
    assert "Thank you: you marked this passage helpful." in partner.get(page).get_data(as_text=True)
    # the curator said the Leeds passage is not evidence: a reader's helpful mark leaves that be
    partner.post("/feedback", data={**form, "chunk_id": str(peers), "helpful": "1"})
    assert {(j.chunk_id, j.verdict, j.source) for j in questions.judgements(question.id)} == {
        (allotments, "evidence", "feedback"), (peers, "not_evidence", "curator")}
    assert rows(kb.store, "SELECT by FROM judgements WHERE source = 'feedback'") == [("reader feedback",)]
    marks = [(m["query"], m["chunk_id"], m["question_id"]) for m in recorded(site)["feedback"]]
    assert marks == [("how do residents grow food together?", allotments, question.id),
                     ("how do residents grow food together?", peers, question.id)]
    # a passage the question's page does not offer cannot be pinned by a mark
    from kb.models import Filters

    offered = {h.chunk_id for h in questions.evidence(site.extensions["searcher"], question.id,
                                                      ("public", "partners")).all_hits()}
    elsewhere = [c.id for d in kb.store.documents(Filters(visibility=("public",))) for c in kb.store.chunks_of(d.id)
                 if c.id not in offered]
    if elsewhere:
        assert partner.post("/feedback", data={**form, "chunk_id": str(elsewhere[0]), "helpful": "1"}).status_code == 302
        assert all(j.chunk_id != elsewhere[0] for j in questions.judgements(question.id))


def test_a_not_helpful_mark_is_no_judgement_and_a_question_must_be_there(site):
    from kb.questions import Questions

    kb = site.extensions["kb"]
    questions = Questions(kb)
    question = questions.add("How do residents grow food together?", by="cur")
    chunk = kb.store.chunks_of(doc_id(site, "Allotments in Croydon"))[0].id
    partner = sign_in(site, READER)
    data = {"q": question.text, "chunk_id": str(chunk), "question_id": str(question.id), "helpful": "0",
            "csrf_token": token(partner, "/")}
    assert partner.post("/feedback", data=data).status_code == 302
    assert questions.judgements(question.id) == []
    assert partner.post("/feedback", data={**data, "question_id": "999999", "helpful": "1"}).status_code == 404
    questions.archive(question.id)
    assert partner.post("/feedback", data={**data, "helpful": "1"}).status_code == 404
    assert questions.judgements(question.id) == [] and len(recorded(site)["feedback"]) == 1


def test_kb_copy_carries_the_analytics(tmp_path, postgres_url):
    """SQLite to PostgreSQL: the rows as they were, and the new database numbers its next rows on."""
    from conftest import FakeEmbedder
    from kb.transfer import copy_collection

    source = KnowledgeBase.open(Settings(data_dir=tmp_path / "sqlite", model="fake"), FakeEmbedder())
    target = KnowledgeBase.open(Settings(data_dir=tmp_path / "pg", model="fake", database_url=postgres_url), FakeEmbedder())
    try:
        day = today().isoformat()
        source.store.analytics.add(searches=[SearchRecord(day, "volunteers", "hybrid", 2, 0.61)],
                                   opens=[OpenRecord(day, "volunteers", 1, 3)],
                                   marks=[FeedbackRecord(day, "volunteers", 1, 3, False, None)])
        counts = copy_collection(source, target).rows
        assert (counts["search_log"], counts["result_opens"], counts["feedback"]) == (1, 1, 1)
        target.store.analytics.add(searches=[SearchRecord(day, "volunteers", "keyword", 0, None)])
        volunteers = Analytics(target.store).report(7).queries[0]
        assert (volunteers.searches, volunteers.nothing, volunteers.opens, volunteers.not_helpful) == (2, 1, 1, 1)
    finally:
        source.close()
        target.close()
