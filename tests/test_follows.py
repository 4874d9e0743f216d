"""Follows of searches and learning questions, their header counts and Atom feeds, and evidence packs:
the real model, on SQLite and PostgreSQL, through the web app as readers use it."""

from __future__ import annotations

import io
import re

import docx
import feedparser
import pytest

from conftest import make_pdf
from ingest.pipeline import ingest_paths
from kb import export, feeds, packs
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.follows import Follows, params_filters, search_params
from kb.models import DocMeta, Filters
from kb.questions import Questions
from kb.search import Searcher
from kb.settings import Settings

from test_admin import PASSWORD, sign_in, token  # noqa: E402  the curator workspace's helpers
PUBLIC_URL = "https://learning.example.org"
ALLOTMENTS = "allotments vegetables growing food"


@pytest.fixture
def site(tmp_path, model, database_url):
    """A public and a partners-only document, a curator and a partner, on each backend in turn."""
    from web import create_app

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "allotments.md").write_text("# Allotments in Croydon\n\nResidents grow vegetables and fruit together "
                                          "on allotments, sharing food with neighbours.\n")
    (folder / "circles.md").write_text("# Peer support in Leeds\n\nPeer supporters with lived experience of mental "
                                       "health problems ran listening circles.\n")
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        secret_key="a key every node shares" if database_url else "")
    kb = KnowledgeBase.open(settings, model)
    ingest_paths(kb, [folder / "allotments.md"], DocMeta(site="Croydon"))
    ingest_paths(kb, [folder / "circles.md"], DocMeta(site="Leeds", visibility="partners"))
    accounts = Accounts(kb.store)
    accounts.add("cur", "curator", PASSWORD)
    accounts.add("par", "partner", PASSWORD)
    app = create_app(settings, {"TESTING": True, "PUBLIC_URL": PUBLIC_URL}, kb=kb)
    app.folder = folder
    yield app
    app.extensions["worker"].stop()


def follow_search(client, q, **params):
    return client.post("/account/follows", data={"q": q, **params, "csrf_token": token(client)})


def only_follow(app, name: str):
    kb = app.extensions["kb"]
    follows = kb.store.follows.of_user(Accounts(kb.store).get(name).id)
    assert len(follows) == 1
    return follows[0]


def header_count(client) -> int:
    """The header's count of new passages on the reader's follows (0 when it shows none)."""
    found = re.search(r'Your follows <span class="badge">(\d+) new</span>', client.get("/").get_data(as_text=True))
    return int(found.group(1)) if found else 0


def ingest(app, name: str, text: str, **meta):
    path = app.folder / name
    path.write_text(text)
    report = ingest_paths(app.extensions["kb"], [path], DocMeta(**meta))
    assert report.ok and report.items[0].status in ("added", "updated"), report.items
    return report.items[0].doc_id


def upload(client, name: str, data: bytes, **meta):
    form = {"csrf_token": token(client, "/admin/upload"), "files": [(io.BytesIO(data), name)], **meta}
    response = client.post("/admin/upload", data=form, content_type="multipart/form-data")
    assert response.status_code == 302


def finish(app):
    assert app.extensions["worker"].wait_idle(60)
    jobs = app.extensions["jobs"].list()
    assert all(job.status == "done" for job in jobs), [(job.status, job.message) for job in jobs]
    return jobs


def make_feed(client) -> str:
    """Make (or renew) the signed-in user's feed token; the feed address of their first follow."""
    response = client.post("/account/feed", data={"csrf_token": token(client, "/account/feed")})
    assert response.status_code == 302
    page = client.get("/account/feed").get_data(as_text=True)
    return re.search(r'value="(https://learning\.example\.org/feeds/[^"]+\.atom)"', page).group(1)


def read_feed(client, url: str):
    response = client.get(url.removeprefix(PUBLIC_URL))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    assert response.headers["Cache-Control"] == "private, no-store"
    parsed = feedparser.parse(response.get_data())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


# following ------------------------------------------------------------------------------------

def test_following_needs_sign_in_and_the_forms_token(site):
    visitor = site.test_client()
    page = visitor.get(f"/?q={ALLOTMENTS}").get_data(as_text=True)
    assert "Sign in to follow this search" in page and "Follow this search</button>" not in page
    assert follow_search(visitor, ALLOTMENTS).status_code == 401
    assert visitor.get("/account/follows").status_code == 302  # to sign in

    partner = sign_in(site, "par")
    refused = partner.post("/account/follows", data={"q": ALLOTMENTS})
    assert refused.status_code == 400 and "security token" in refused.get_data(as_text=True)
    assert "Follow this search</button>" in partner.get(f"/?q={ALLOTMENTS}").get_data(as_text=True)
    made = follow_search(partner, ALLOTMENTS, site="Croydon", mode="hybrid")
    assert made.status_code == 302 and made.headers["Location"].startswith("/?")
    follow = only_follow(site, "par")
    assert (follow.query, follow.params) == (ALLOTMENTS, {"site": ["Croydon"]})
    assert follow_search(partner, ALLOTMENTS, site="Croydon").status_code == 302  # the same search: still one follow
    only_follow(site, "par")
    page = partner.get(f"/?q={ALLOTMENTS}&site=Croydon").get_data(as_text=True)
    assert "You follow this." in page and "Follow this search</button>" not in page
    listed = partner.get("/account/follows")
    assert listed.status_code == 200 and ALLOTMENTS in listed.get_data(as_text=True)
    assert listed.headers["Cache-Control"] == "private, no-store"

    curator = sign_in(site, "cur")  # anyone else's follow is not there for them
    assert curator.get(f"/account/follows/{follow.id}").status_code == 404
    assert curator.post(f"/account/follows/{follow.id}/unfollow",
                        data={"csrf_token": token(curator, "/account/follows")}).status_code == 404
    assert partner.post(f"/account/follows/{follow.id}/unfollow").status_code == 400  # no token
    assert partner.post(f"/account/follows/{follow.id}/unfollow",
                        data={"csrf_token": token(partner, "/account/follows")}).status_code == 302
    assert site.extensions["kb"].store.follows.of_user(follow.user_id) == []


def test_the_header_counts_new_passages_after_an_ingest_and_viewing_resets_them(site):
    partner, curator = sign_in(site, "par"), sign_in(site, "cur")
    follow_search(partner, ALLOTMENTS)
    follow = only_follow(site, "par")
    assert header_count(partner) == 0

    upload(curator, "harvest.pdf", make_pdf([[("h1", "Harvest festival")],
                                             [("p", "Volunteers grew vegetables on the allotments and shared the "
                                                    "food at a harvest festival for isolated neighbours.")]]),
           title="Harvest on the allotments", site="Croydon", visibility="partners")
    job = finish(site)[0]
    assert header_count(partner) >= 1  # the next request after the ingest ended
    ingest(site, "budget.md", "# Budget\n\nThe finance team reconciled invoices for the quarter.\n", site="Leeds")
    counted = header_count(partner)  # a document that does not match adds nothing
    ingest(site, "secret.md", "# Allotment plots\n\nVegetables grown on allotments fed families.\n",
           site="Croydon", visibility="curators")
    assert header_count(partner) == counted  # nor one the partner may not see
    assert header_count(curator) == 0  # the curator follows nothing

    page = partner.get(f"/account/follows/{follow.id}").get_data(as_text=True)
    assert "Harvest on the allotments" in page and "Allotment plots" not in page
    assert "Allotments in Croydon" not in page  # there before the follow: not new
    assert header_count(partner) == 0  # seen
    assert "Nothing new since then" in partner.get(f"/account/follows/{follow.id}").get_data(as_text=True)
    assert job.doc_id


# feeds ----------------------------------------------------------------------------------------

def test_a_feed_parses_holds_what_its_owner_may_see_and_shows_a_new_document(site):
    partner, curator = sign_in(site, "par"), sign_in(site, "cur")
    follow_search(partner, "peer support listening circles lived experience")
    url = make_feed(partner)
    parsed = read_feed(site.test_client(), url)  # a feed reader: no session, only the address
    assert parsed.feed.title.startswith("peer support listening circles")
    assert parsed.feed.id.startswith("tag:learning.example.org,")
    assert any(link.rel == "self" and link.href == url for link in parsed.feed.links)
    titles = [e.title for e in parsed.entries]
    assert "Peer support in Leeds" in titles  # partners-only: the partner may see it
    entry = parsed.entries[titles.index("Peer support in Leeds")]
    assert entry.id.startswith("tag:learning.example.org,") and entry.updated
    assert entry.link.startswith(f"{PUBLIC_URL}/doc/") and "#chunk-" in entry.link
    assert "<mark>" not in entry.summary and "listening circles" in entry.summary
    assert entry.author == "Leeds"

    ingest(site, "mentors.md", "# Peer mentors\n\nPeer support groups and listening circles led by people with "
                               "lived experience.\n", site="Plymouth", visibility="curators")
    upload(curator, "circles-2.md", b"# Listening circles, year two\n\nPeer supporters with lived experience ran "
                                    b"more listening circles in 2023.\n", title="Listening circles, year two",
           site="Leeds", visibility="partners")
    finish(site)
    later = read_feed(site.test_client(), url)
    titles = [e.title for e in later.entries]
    assert titles[0] == "Listening circles, year two"  # newest document first, on the next request
    assert "Peer mentors" not in titles  # curators only: never in a partner's feed
    assert next(e for e in later.entries if e.title == "Peer support in Leeds").id == entry.id  # ids are stable

    curator_follow = follow_search(curator, "peer support listening circles lived experience")
    assert curator_follow.status_code == 302
    assert "Peer mentors" in [e.title for e in read_feed(site.test_client(), make_feed(curator)).entries]

    kb = site.extensions["kb"]  # visibility is computed as the owner may see now, not when subscribed
    secret = next(d for d in kb.store.documents() if d.title == "Peer support in Leeds")
    kb.update(secret.id, {"visibility": "curators"})
    assert "Peer support in Leeds" not in [e.title for e in read_feed(site.test_client(), url).entries]


def test_feed_tokens_are_renewed_revoked_and_die_with_their_user(site):
    partner = sign_in(site, "par")
    follow_search(partner, ALLOTMENTS)
    reader = site.test_client()
    first = make_feed(partner)
    assert reader.get(first.removeprefix(PUBLIC_URL)).status_code == 200
    secret = first.split("/feeds/")[1].split("/")[0]
    kb = site.extensions["kb"]
    stored = kb.store.follows.token(Accounts(kb.store).get("par").id)
    assert secret not in stored[0]  # only its hash is kept

    second = make_feed(partner)
    assert second != first
    assert reader.get(first.removeprefix(PUBLIC_URL)).status_code == 404
    assert reader.get(second.removeprefix(PUBLIC_URL)).status_code == 200
    wrong = second.replace(second.split("/feeds/")[1].split("/")[0], "x" * 43)
    assert reader.get(wrong.removeprefix(PUBLIC_URL)).status_code == 404
    follow = only_follow(site, "par")
    assert reader.get(second.removeprefix(PUBLIC_URL).replace(f"/{follow.id}.atom", f"/{follow.id + 1}.atom")
                      ).status_code == 404  # another follow number: not theirs

    assert partner.post("/account/feed/revoke").status_code == 400  # the form's token is needed
    assert partner.post("/account/feed/revoke", data={"csrf_token": token(partner, "/account/feed")}).status_code == 302
    assert reader.get(second.removeprefix(PUBLIC_URL)).status_code == 404
    assert "Make my feed addresses" in partner.get("/account/feed").get_data(as_text=True)

    third = make_feed(partner)
    assert reader.get(third.removeprefix(PUBLIC_URL)).status_code == 200
    Accounts(kb.store).remove("par")
    assert reader.get(third.removeprefix(PUBLIC_URL)).status_code == 404


def test_feeds_answer_even_where_visitors_must_sign_in(site):
    site.config["ANONYMOUS_SEARCH"] = False
    partner = sign_in(site, "par")
    follow_search(partner, ALLOTMENTS)
    url = make_feed(partner)
    assert site.test_client().get("/").status_code == 401
    assert read_feed(site.test_client(), url).entries


# questions and evidence packs -------------------------------------------------------------------

def test_following_a_question_and_its_evidence_pack(site):
    kb = site.extensions["kb"]
    ingest(site, "plots.md", "# Community growing\n\nNeighbours grow vegetables together on shared allotment "
                             "plots, and the food bank receives the surplus.\n", site="Leeds")
    pdf = make_pdf([[("h1", "Food growing")], [("p", "Allotment volunteers grew vegetables for the community "
                                                     "fridge and taught children to cook the food.")]])
    (site.folder / "report.pdf").write_bytes(pdf)
    ingest_paths(kb, [site.folder / "report.pdf"], DocMeta(site="Plymouth", title="Plymouth food report",
                                                           visibility="partners", published="2022-03-01"))
    questions = Questions(kb)
    question = questions.add("How do sites grow food with residents on allotments?", "For the spring event.",
                             by="cur")
    evidence = questions.evidence(site.extensions["searcher"], question.id, ("public", "partners", "curators"))
    pinned = next(h for s in evidence.sites for h in s.hits if h.site == "Croydon")
    questions.judge(question.id, pinned.chunk_id, "evidence", by="cur")

    partner = sign_in(site, "par")
    page = partner.get(f"/questions/{question.id}").get_data(as_text=True)
    assert "Follow this question</button>" in page and f"/questions/{question.id}/pack.docx" in page
    made = partner.post("/account/follows", data={"question": question.id, "csrf_token": token(partner, "/")})
    assert made.status_code == 302 and made.headers["Location"] == f"/questions/{question.id}"
    assert only_follow(site, "par").question_id == question.id
    assert "You follow this." in partner.get(f"/questions/{question.id}").get_data(as_text=True)
    assert site.test_client().post("/account/follows", data={"question": question.id}).status_code == 400

    response = partner.get(f"/questions/{question.id}/pack.docx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.openxmlformats-officedocument")
    document = docx.Document(io.BytesIO(response.get_data()))
    text = "\n".join(p.text for p in document.paragraphs)
    links = [link.url for p in document.paragraphs for link in p.hyperlinks]
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert document.paragraphs[0].text == question.text and "For the spring event." in text
    assert headings[0] == packs.PINNED and {"Croydon", "Leeds", "Plymouth"} <= set(headings)

    csv_rows = export.parse_csv(partner.get(f"/questions/{question.id}/pack.csv").get_data(as_text=True))
    md = partner.get(f"/questions/{question.id}/pack.md").get_data(as_text=True)
    assert export.parse_markdown(md, packs.COLUMNS) == csv_rows
    assert md.startswith(f"# Evidence pack: {question.text}") and "For the spring event." in md
    quoted = [row for row in csv_rows if row["link"]]
    assert quoted[0]["pinned"] == "yes" and quoted[0]["site"] == "Croydon"
    assert "Plymouth food report" in {row["title"] for row in quoted}
    quotes = [p for p in document.paragraphs if p.style.name == "Quote"]
    assert len(quotes) == len(quoted)
    for row in quoted:  # every quotation cited: title, page, link
        assert row["link"].startswith(f"{PUBLIC_URL}/doc/") and row["link"] in links
        cited = next(p.text for p in document.paragraphs if row["link"] in p.text)
        assert cited.startswith(row["title"]) and (not row["page"] or f"page {row['page']}" in cited)
    assert any(row["page"] == "2" for row in quoted)  # the PDF's passage, on its second page

    visitor_rows = export.parse_csv(site.test_client().get(f"/questions/{question.id}/pack.csv").get_data(as_text=True))
    assert "Plymouth food report" not in {row["title"] for row in visitor_rows}  # partners only
    visitor_doc = docx.Document(io.BytesIO(site.test_client().get(f"/questions/{question.id}/pack.docx").get_data()))
    assert "Plymouth food report" not in "\n".join(p.text for p in visitor_doc.paragraphs)
    assert partner.get("/questions/999999/pack.md").status_code == 404

    ingest(site, "orchard.md", "# Orchards and allotments\n\nResidents grow vegetables and plant fruit trees on "
                               "allotments to share food.\n", site="Croydon")
    assert header_count(partner) >= 1  # the question's follow counts its new passages
    url = make_feed(partner)
    assert "Orchards and allotments" in [e.title for e in read_feed(site.test_client(), url).entries]

    questions.archive(question.id)  # archived questions are for curators, packs as pages
    assert partner.get(f"/questions/{question.id}/pack.csv").status_code == 404
    assert sign_in(site, "cur").get(f"/questions/{question.id}/pack.csv").status_code == 200


def test_a_document_updated_within_the_second_of_a_look(fake_kb, tmp_path):
    """Stored times keep whole seconds: a document updated in the second of the last look is new
    when it came after that look (the store has changed since), and not when it came before."""
    from support.db import run

    user = Accounts(fake_kb.store).add("par", "partner", PASSWORD)
    follows = Follows(fake_kb, Searcher(fake_kb))
    follow = follows.follow_search(user, "allotments vegetables", Filters())
    path = tmp_path / "plots.md"
    path.write_text("# Plots\n\nAllotments and vegetables for everyone.\n")
    doc = fake_kb.store.get(ingest_paths(fake_kb, [path]).items[0].doc_id)
    run(fake_kb.store, "UPDATE follows SET seen_at = ? WHERE id = ?", doc.updated_at, follow.id)
    assert follows.news(user) == {follow.id: 1}  # looked just before the ingest, within its second
    follows.seen(user, follow)
    run(fake_kb.store, "UPDATE follows SET seen_at = ? WHERE id = ?", doc.updated_at, follow.id)
    assert follows.news(user) == {follow.id: 0}  # looked just after it, within the same second
    assert follows.new_hits(user, follows.get(user, follow.id)) == []


# pure parts ------------------------------------------------------------------------------------

def test_saved_search_parameters_round_trip():
    filters = Filters(site=["Leeds", "Croydon"], doc_type=["learning-report"], tag=["food"], year=[2021],
                      date_from="2020-01", date_to="2022")
    params = search_params(filters, "dense")
    assert params == {"site": ["Leeds", "Croydon"], "type": ["learning-report"], "tag": ["food"], "year": ["2021"],
                      "from": ["2020-01"], "to": ["2022"], "mode": ["dense"]}
    assert params_filters(params) == filters
    assert search_params(Filters(), "hybrid") == {}


def test_an_atom_feed_drops_what_xml_cannot_hold():
    entry = feeds.Entry(id=feeds.tag_uri("https://kb.example.org:8443/", "2024-05-01T10:00:00+00:00", "doc/1"),
                        title="Form\x0cfeed & <b>", updated="2024-05-01T10:00:00+00:00", link="https://kb.example.org/doc/1",
                        summary=feeds.plain("a <mark>match</mark> &amp; more\x00"), author="Leeds")
    body = feeds.atom(feeds.Feed(id="tag:kb.example.org,2024-05-01:follow/1", title="T", updated=entry.updated,
                                 self_link="https://kb.example.org/feeds/x/1.atom", author="kb"), [entry])
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    assert parsed.entries[0].id == "tag:kb.example.org,2024-05-01:doc/1"
    assert parsed.entries[0].title == "Formfeed & <b>" and parsed.entries[0].summary == "a match & more"


def test_a_question_archived_after_it_was_followed_is_gone_for_partners(fake_kb):
    """Archiving hides a question from non-curators; their follows of it went on showing its text,
    its new passages and its feed, and following an archived id told them it existed."""
    from kb.accounts import Accounts
    from kb.errors import NotFound
    from kb.follows import Follows
    from kb.questions import Questions
    from kb.search import Searcher

    accounts, questions = Accounts(fake_kb.store), Questions(fake_kb)
    partner = accounts.add("par", "partner", "a long enough passphrase for partners")
    curator = accounts.add("cur", "curator", "a long enough passphrase for curators")
    question, other = questions.add("How do volunteers stay involved?"), questions.add("What did funding change?")
    follows = Follows(fake_kb, Searcher(fake_kb))
    theirs, mine = follows.follow_question(partner, question.id), follows.follow_question(curator, question.id)
    questions.archive(question.id)
    questions.archive(other.id)
    assert follows.of(partner) == [] and [f.id for f in follows.of(curator)] == [mine.id]
    with pytest.raises(NotFound):
        follows.get(partner, theirs.id)
    with pytest.raises(NotFound) as refused:
        follows.follow_question(partner, other.id)
    assert "archived" not in str(refused.value)
