"""Every route through the Flask test client, on the sample corpus with the real model."""

from __future__ import annotations

import re

import pytest

from conftest import CORPUS
from ingest.pipeline import ingest_paths
from kb.collection import KnowledgeBase
from kb.models import DocMeta
from kb.settings import Settings

PARTNERS_ONLY = "Lived experience and mental health: Leeds phase 1 learning report"


def doc_id(kb, rel: str) -> int:
    return kb.store.find(str((CORPUS / rel).resolve())).id


def test_overview_without_a_query(client):
    html = client.get("/").get_data(as_text=True)
    assert "Latest documents" in html and "By site" in html and "Newham" in html
    assert 'autofocus' in html and 'role="search"' in html


def test_search_page_answers_a_paraphrased_question(client):
    html = client.get("/?q=which+partnership+covers+Newham").get_data(as_text=True)
    first = re.search(r'<li class="hit">(.*?)</li>', html, re.S).group(1)
    assert "Area profile: Newham" in first and "<mark>" in first
    assert re.search(r'href="/doc/\d+\?hl=\d+&amp;q=which\+partnership\+covers\+Newham#chunk-\d+"', first)  # the query: an open


def test_facets_filter_combine_and_clear(client):
    html = client.get("/?q=partnership&type=profile&site=Leeds").get_data(as_text=True)
    titles = re.findall(r'<h2><a href="[^"]+">([^<]+)</a></h2>', html)
    assert titles and all(t == "Area profile: Leeds" for t in titles)
    assert "Clear all filters" in html and html.count('class="on"') == 2  # both chosen values marked


def test_pagination_keeps_state_in_the_url(client):
    first = client.get("/?q=funding&k=5").get_data(as_text=True)
    assert 'rel="next"' in first
    next_url = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "q=funding" in next_url and "page=2" in next_url
    second = client.get(next_url).get_data(as_text=True)
    assert 'start="6"' in second and 'rel="prev"' in second


def test_no_results_offers_to_drop_filters(client):
    html = client.get("/?q=volunteers&site=Atlantis").get_data(as_text=True)
    assert "Nothing in the collection matches" in html and "Search again without filters" in html


def test_document_page_highlights_the_chunk_and_links_the_original(client, corpus_kb):
    pdf = doc_id(corpus_kb, "docs/learning-report-plymouth.pdf")
    html = client.get(f"/doc/{pdf}?hl=3").get_data(as_text=True)
    assert 'id="chunk-3" class="chunk hit"' in html
    assert re.search(rf'href="/doc/{pdf}/file#page=\d+"', html)
    assert "More like this" in html
    response = client.get(f"/doc/{pdf}/file")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")


def test_bad_page_parameters_are_messages_not_tracebacks(client):
    response = client.get("/?q=x&k=abc")
    assert response.status_code == 400 and "k must be a whole number" in response.get_data(as_text=True)
    assert client.get("/doc/999999").status_code == 404
    assert "Traceback" not in client.get("/?q=x&year=20x").get_data(as_text=True)
    for blank in ("%20", "%00", "%E2%80%8B"):  # a space, a NUL, a zero-width space: no query at all
        response = client.get(f"/?q={blank}")
        assert response.status_code == 200 and "Latest" in response.get_data(as_text=True), blank
        response = client.get(f"/api/search?q={blank}")  # given, but nothing to search in it
        assert (response.status_code, response.get_json()["error"]["message"]) == (422, "the query is empty")


def test_api_search_shape(client):
    data = client.get("/api/search?q=how+much+did+phase+2+sites+get&k=3").get_json()
    assert set(data) >= {"query", "took_ms", "hits"} and len(data["hits"]) == 3
    for hit in data["hits"]:
        assert set(hit) >= {"doc_id", "title", "source", "site", "doc_type", "published", "page", "heading",
                            "text", "snippet", "score"}
    assert any("£450,000" in h["text"] for h in data["hits"])


@pytest.mark.parametrize("query, status, message", [
    ("q=x&k=-1", 400, "k must be between"),
    ("q=x&k=100000", 400, "k must be between"),
    ("q=x&k=ten", 400, "whole number"),
    ("q=x&colour=red", 400, "unknown parameter"),
    ("q=x&mode=magic", 400, "mode must be"),
    ("q=x&year=nineteen", 400, "year must be"),
    ("q=", 400, "q is required"),
    ("k=3", 400, "q is required"),
])
def test_api_search_bad_parameters(client, query, status, message):
    response = client.get(f"/api/search?{query}")
    assert response.status_code == status
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"} and message in error["message"]


def test_api_documents_and_similar(client, corpus_kb):
    listing = client.get("/api/documents").get_json()
    assert listing["total"] == len(listing["documents"]) > 10
    newham = doc_id(corpus_kb, "docs/profile-newham.md")
    doc = client.get(f"/api/documents/{newham}").get_json()
    assert doc["partnership"] == "Well Newham" and doc["chunks"]
    similar = client.get(f"/api/documents/{newham}/similar").get_json()["similar"]
    assert similar and all(s["id"] != newham for s in similar)
    assert client.get("/api/documents/999999").get_json()["error"]["code"] == "not_found"
    assert client.get("/api/documents/999999/similar").status_code == 404
    assert client.get("/api/documents?bogus=1").status_code == 400
    for bad in ("year=abc", "year=21", "order=sideways"):
        assert client.get(f"/api/documents?{bad}").status_code == 400, bad
    assert client.get("/api/across?q=volunteers&bogus=1").status_code == 400
    for url in ("/api/documents/9223372036854775808", "/api/documents/99999999999999999999/similar",
                "/doc/99999999999999999999", "/doc/99999999999999999999/file"):
        assert client.get(url).status_code == 404, url


def test_api_stats_and_health(client):
    stats = client.get("/api/stats").get_json()
    assert stats["by_site"]["Newham"] == 1 and stats["index"]["kind"] == "flat"
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_openapi_matches_the_routes(corpus_app, client):
    spec = client.get("/api/openapi.json").get_json()
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in corpus_app.url_map.iter_rules()
              if r.rule.startswith("/api/")}
    assert set(spec["paths"]) == routes
    for path, item in spec["paths"].items():
        for name in re.findall(r"{(\w+)}", path):
            assert any(p["name"] == name and p["in"] == "path" for p in item["get"]["parameters"])


def test_partners_only_document_never_reaches_anonymous_visitors(client, corpus_kb):
    hidden = doc_id(corpus_kb, "docs/learning-report-leeds.md")
    query = "lived experience and mental health in Leeds"
    html = client.get(f"/?q={query}").get_data(as_text=True)
    assert PARTNERS_ONLY not in html
    data = client.get(f"/api/search?q={query}&k=100").get_json()
    assert all(h["doc_id"] != hidden for h in data["hits"])
    assert data["facets"]["doc_type"].get("learning-report") == 2  # Croydon and Plymouth, not Leeds
    stats = client.get("/api/stats").get_json()
    assert stats["documents"] == corpus_kb.store.count() - 1 and stats["by_site"]["Leeds"] == 1
    assert all(d["id"] != hidden for d in client.get("/api/documents").get_json()["documents"])
    assert PARTNERS_ONLY not in client.get("/").get_data(as_text=True)
    for url in (f"/doc/{hidden}", f"/doc/{hidden}/file", f"/api/documents/{hidden}",
                f"/api/documents/{hidden}/similar"):
        assert client.get(url).status_code == 404, url
    # a shared link to it offers a sign-in, as a link to no document at all does: the same page
    pages = [client.get(f"/doc/{n}").get_data(as_text=True).replace(str(n), "ID") for n in (hidden, 987654)]
    assert pages[0] == pages[1] and 'href="/login?next=/doc/ID"' in pages[0]
    for other in client.get("/api/documents").get_json()["documents"]:
        similar = client.get(f"/api/documents/{other['id']}/similar?k=50").get_json()["similar"]
        assert all(s["id"] != hidden for s in similar)


def test_security_headers(client):
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_hostile_text_is_escaped_everywhere(tmp_path, model):
    from web import create_app

    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "evil.md").write_text(f"# {payload}\n\nPartnership text about {payload} volunteers.\n")
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data"), model)
    assert ingest_paths(kb, [folder], DocMeta(title=payload, site=payload)).ok
    client = create_app(kb.settings, {"TESTING": True}, kb=kb).test_client()
    pages = [client.get(f"/?q={q}").get_data(as_text=True) for q in ("volunteers", payload)]
    pages.append(client.get("/doc/1?hl=0").get_data(as_text=True))
    pages.append(client.get("/").get_data(as_text=True))
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


@pytest.mark.parametrize("query", ["q=x&from=notadate", "q=x&from=2021-13-45", "q=x&to=yesterday"])
def test_date_filters_are_validated(client, query):
    response = client.get(f"/api/search?{query}")
    assert response.status_code == 400 and "must be a date" in response.get_json()["error"]["message"]


def test_paging_totals_are_stable(client):
    totals = {client.get(f"/api/search?q=volunteers&k=10&page={p}").get_json()["total"] for p in (1, 2, 5, 9)}
    assert len(totals) == 1
    last = -(-totals.pop() // 10)
    html = client.get(f"/?q=volunteers&page={last + 3}").get_data(as_text=True)
    assert "past the last page" in html


def test_a_question_nothing_matches_says_so_and_shows_the_nearest_apart(client):
    """The count was the candidate pool ("About 100 passages" for banana bread); now only matches
    count: a keyword match, or a passage close enough in meaning."""
    for query in ("qwxzv plorf", "recipe for banana bread"):
        html = client.get(f"/?q={query}").get_data(as_text=True)
        assert "Nothing in the collection matches" in html and "Nearest passages" in html
        assert "document" not in html.split('class="summary"')[0][-200:]  # no count above them
        data = client.get(f"/api/search?q={query}").get_json()
        assert (data["total"], data["hits"], data["matching"]["passages"]) == (0, [], 0)
        assert data["nearest"] and all("/" not in h["source"] for h in data["nearest"])
    html = client.get("/?q=which+partnership+covers+Newham").get_data(as_text=True)
    assert "Nothing in the collection matches" not in html and "Nearest passages" not in html


def test_results_come_one_per_document_with_honest_counts_and_facets(client):
    page = client.get("/?q=volunteers&k=10").get_data(as_text=True)
    grouped = client.get("/api/search?q=volunteers&k=100&group=document").get_json()
    passages = client.get("/api/search?q=volunteers&k=100").get_json()
    ids = [h["doc_id"] for h in grouped["hits"]]
    assert len(ids) == len(set(ids)) == grouped["total"] == grouped["matching"]["documents"]
    assert passages["total"] == passages["matching"]["passages"] > grouped["total"]  # the passage list stays
    assert len({h["doc_id"] for h in passages["hits"][:10]}) < 10 <= len(ids)  # one document filled the list
    assert all(len(h["more"]) <= 2 and all(m["chunk_id"] != h["chunk_id"] for m in h["more"]) for h in grouped["hits"])
    assert any(h["more"] for h in grouped["hits"])
    first = grouped["hits"][0]
    assert first["doc_id"] == passages["hits"][0]["doc_id"]  # at the rank of its best passage
    more = '<ul class="more">' in page and f'{grouped["matching"]["documents"]} documents' in page
    assert more and page.count('<li class="hit">') == 10
    sites = passages["facets"]["site"]
    assert sum(sites.values()) <= grouped["matching"]["documents"]  # facets count matching documents


def test_wrong_methods_get_405_and_visitors_never_see_server_paths(client):
    assert client.post("/api/search?q=x").status_code == 405
    hits = client.get("/api/search?q=Newham").get_json()["hits"]
    assert hits and all("/" not in h["source"] for h in hits)
    assert all("/" not in d["source"] for d in client.get("/api/documents").get_json()["documents"])
    assert "vectors" not in client.get("/api/stats").get_json()["index"]


def test_a_chosen_site_still_offers_the_other_sites(client):
    html = client.get("/?q=partnership&site=Leeds").get_data(as_text=True)
    facet = re.search(r'<h3 id="facet-site">Site</h3>(.*?)</section>', html, re.S).group(1)
    assert "Newham" in facet and '<span class="visually-hidden">Remove filter: </span>Leeds' in facet


@pytest.mark.parametrize("url", ["/api/search?q=garden&site=%00", "/api/search?q=gar%00den&tag=a%00b",
                                 "/?q=garden&type=%00", "/api/documents?site=%00"])
def test_nul_characters_in_parameters_are_not_errors(client, url):
    """PostgreSQL cannot hold NUL in text (SQLite can): a NUL in any parameter must not become a 500."""
    assert client.get(url).status_code in (200, 400)


# bounds on what a query string may ask for (issue 17, item 4) ----------------------------------

REPEATED = "&".join(["tag=a"] * 30_000)  # a 180 KB URL that once took 6 s and came back as 14 MB


@pytest.mark.parametrize("path", ["/", "/api/search", "/api/documents"])
@pytest.mark.parametrize("query, limit", [
    (REPEATED, "at most 20 values of one parameter"),
    ("&".join(f"tag=t{n}" for n in range(21)), "at most 20 values of one parameter"),
    ("&".join(f"x{n}=1" for n in range(101)), "at most 100 parameters"),
    ("site=" + "s" * 201, "at most 200 characters"),
    ("q=" + "volunteers " * 400, "at most 4,000 characters"),
], ids=["30000-tags", "21-tags", "101-parameters", "long-site", "long-q"])
def test_oversized_query_strings_are_refused_with_the_limit_named(client, path, query, limit):
    if path != "/api/documents" and not query.startswith("q="):
        query = f"q=volunteers&{query}"
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    message = response.get_json()["error"]["message"] if path.startswith("/api/") else response.get_data(as_text=True)
    assert limit in message
    assert len(response.data) < 20_000  # the refusal does not echo what it refuses


def test_repeated_filter_values_count_once_and_links_carry_only_known_parameters(client):
    html = client.get("/?q=partnership&site=Leeds&site=Leeds&site=Leeds&utm_source=x&junk=1").get_data(as_text=True)
    assert html.count('<input type="hidden" name="site" value="Leeds">') == 1
    assert "junk" not in html and "utm_source" not in html
    assert "site=Leeds&amp;site=Leeds" not in html
    bare = client.get("/?q=partnership&site=Leeds").get_data(as_text=True)
    assert len(html) == len(bare)


def test_the_largest_query_string_allowed_stays_small_and_fast(client):
    """20 values of each filter at 200 characters: the page stays within a bounded size."""
    import time

    values = [("s" * 190) + f"{n:010d}" for n in range(20)]
    query = "&".join(f"{name}={v}" for name in ("site", "type", "tag") for v in values)
    started = time.perf_counter()
    response = client.get(f"/?q=volunteers&{query}")
    took = time.perf_counter() - started
    assert response.status_code == 200 and took < 3
    assert len(response.data) < 250_000


# caching (issue 17, item 5) ---------------------------------------------------------------------

def test_anonymous_pages_and_public_originals_are_revalidated_every_time(client, corpus_kb):
    """A shared cache may keep what anyone may see, but must ask again before each use, so the
    server's visibility check runs every time; a conditional request costs no body."""
    pdf = doc_id(corpus_kb, "docs/learning-report-plymouth.pdf")
    for url in ("/", "/?q=volunteers", f"/doc/{pdf}", f"/doc/{pdf}/file", "/themes"):
        response = client.get(url)
        assert response.status_code == 200, url
        cache = response.cache_control
        assert cache.no_cache and not cache.public and cache.max_age is None, (url, response.headers["Cache-Control"])
        assert "cookie" in {v.lower() for v in response.vary}, url
        again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and not again.data, url


@pytest.mark.parametrize("url", ["/api/search?q=volunteers", "/api/documents", "/api/documents/1", "/api/stats",
                                 "/api/across?q=volunteers", "/healthz", "/login", "/admin/documents",
                                 "/doc/999999", "/?q=x&k=abc"])
def test_answers_that_depend_on_the_reader_are_never_stored(client, url):
    response = client.get(url)
    assert response.headers["Cache-Control"] == "private, no-store", url
    assert "cookie" in {v.lower() for v in response.vary}


def test_static_assets_stay_cacheable(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200 and "no-store" not in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize("url", ["/api/search?q=x", "/api/stats", "/doc/1", "/"])
def test_a_405_says_which_methods_are_allowed(client, url):
    response = client.delete(url)
    assert response.status_code == 405
    assert {"GET", "HEAD"} <= {m.strip() for m in response.headers.get("Allow", "").split(",")}
    if url.startswith("/api/"):
        assert response.get_json()["error"]["code"] == "method_not_allowed"
