"""Cross-site learning on the sample corpus: across-sites view, themes, site pages, exports."""

from __future__ import annotations

import csv
import io
import re

from kb import export, themes
from kb.models import Filters
from support.db import rows as sql_rows

SITES = ["Coventry", "Croydon", "Gloucestershire", "Leeds", "Newham", "Plymouth"]
LEEDS_REPORT = "Lived experience and mental health: Leeds phase 1 learning report"


def test_across_sites_groups_passages_by_site(client):
    data = client.get("/api/across?q=what+have+sites+learned+about+volunteers").get_json()
    by_site = {g["site"]: g for g in data["sites"]}
    assert sorted(by_site) == SITES
    assert by_site["Plymouth"]["found"] and all(h["site"] == "Plymouth" for h in by_site["Plymouth"]["hits"])
    found = [g["found"] for g in data["sites"]]
    assert found == sorted(found, reverse=True), "sites with nothing come last"
    html = client.get("/across?q=what+have+sites+learned+about+volunteers").get_data(as_text=True)
    assert ">Plymouth</a></h2>" in html
    if not all(found):
        assert html.index(">Plymouth</a></h2>") < html.index("Nothing from")


def test_across_sites_says_plainly_when_a_site_has_nothing(client):
    data = client.get("/api/across?q=football+stadium+car+parking+charges").get_json()
    assert not any(g["found"] for g in data["sites"])
    html = client.get("/across?q=football+stadium+car+parking+charges").get_data(as_text=True)
    for site in SITES:
        assert f"Nothing from {site} on this question yet." in html


def test_across_sites_respects_visibility(client):
    data = client.get("/api/across?q=lived+experience+and+mental+health+in+Leeds").get_json()
    assert all(h["title"] != LEEDS_REPORT for g in data["sites"] for h in g["hits"])


def test_themes_are_reproducible(corpus_kb):
    def snapshot():
        with corpus_kb.writing():
            built = themes.build(corpus_kb)
        rows = sql_rows(corpus_kb.store, "SELECT chunk_id, theme_id FROM chunk_themes ORDER BY chunk_id")
        return [(t.label, t.size) for t in built], [tuple(r) for r in rows]

    first = snapshot()
    assert first == snapshot()
    assert 4 <= len(first[0]) <= 30
    assert not themes.stale(corpus_kb)


def test_corpus_themes_read_as_distinct_phrases_of_whole_words(corpus_kb):
    with corpus_kb.writing():
        built = themes.build(corpus_kb)
    text = " ".join(f"{c.heading} {c.text}" for c in corpus_kb.store.themes.active_passages()).lower()
    for t in built:
        for word in " ".join([t.label, *t.terms]).lower().split():
            assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text), (t.label, word)
    assert len({t.label for t in built}) == len(built)
    assert sum(" " in t.label for t in built) >= len(built) - 1  # phrases ("Lived experience"), not word lists
    for a in built:  # themes that read alike were merged
        for b in built:
            assert a is b or not themes.read_alike(a.terms[:3], b.terms[:3]), (a.terms, b.terms)


def test_theme_pages_and_heat_map(client):
    kb = client.application.extensions["kb"]  # the backend this client's app runs on
    html = client.get("/themes").get_data(as_text=True)
    assert "Passages per theme and site" in html and 'class="heat heat-' in html
    visible = themes.visible_themes(kb, ("public",))
    assert visible and all(t.label for t in visible)
    page = client.get(f"/themes/{visible[0].id}").get_data(as_text=True)
    assert "Representative passages" in page and visible[0].label in page
    assert LEEDS_REPORT not in page
    everyone = themes.visible_themes(kb, ("public", "partners", "curators"))
    assert sum(t.passages for t in everyone) > sum(t.passages for t in visible)  # the partners-only report counts only for partners
    assert client.get("/themes/9999").status_code == 404


def test_every_site_page_lists_its_documents(client, corpus_kb):
    for site in SITES + ["Programme"]:
        html = client.get(f"/site/{site}").get_data(as_text=True)
        docs = corpus_kb.store.documents(Filters(site=[site], visibility=("public",)))
        assert docs
        for doc in docs:
            assert f'href="/doc/{doc.id}"' in html, (site, doc.title)
    assert "Well Newham" in client.get("/site/Newham").get_data(as_text=True)
    assert LEEDS_REPORT not in client.get("/site/Leeds").get_data(as_text=True)
    assert client.get("/site/Atlantis").status_code == 404


def test_exports_parse_back_into_the_same_rows(client):
    hits = client.get("/api/search?q=phase+2+grants&k=5&group=document").get_json()["hits"]  # as the page lists them
    rows = export.parse_csv(client.get("/export?q=phase+2+grants&k=5&format=csv").get_data(as_text=True))
    assert [r["title"] for r in rows] == [h["title"] for h in hits]
    passages = client.get("/api/search?q=phase+2+grants&k=5").get_json()["hits"]
    listed = export.parse_csv(client.get("/export?q=phase+2+grants&k=5&group=passage&format=csv").get_data(as_text=True))
    assert [r["passage"][:40] for r in listed] == [" ".join(h["text"].split())[:40] for h in passages]
    assert all(r["link"].startswith("http://localhost/doc/") and "#chunk-" in r["link"] for r in rows)
    md_text = client.get("/export?q=phase+2+grants&k=5&format=md").get_data(as_text=True)
    assert export.parse_markdown(md_text) == rows
    across_csv = client.get("/export?view=across&q=volunteers&format=csv")
    assert across_csv.headers["Content-Disposition"] == 'attachment; filename="kb-across.csv"'
    across_rows = export.parse_csv(across_csv.get_data(as_text=True))
    assert {r["site"] for r in across_rows} == set(SITES)
    md = client.get("/export?view=across&q=volunteers&format=md").get_data(as_text=True)
    assert export.parse_markdown(md) == across_rows
    assert client.get("/export?q=x&format=pdf").status_code == 400


def test_csv_cells_cannot_become_formulas():
    rows = [{c: "" for c in export.COLUMNS} | {"title": "=HYPERLINK(\"http://evil\")", "site": "+1"}]
    parsed = list(csv.DictReader(io.StringIO(export.to_csv(rows))))
    assert parsed[0]["title"].startswith("'=") and parsed[0]["site"] == "'+1"
    assert export.parse_csv(export.to_csv(rows)) == rows


def test_markdown_cells_cannot_become_markup():
    hostile = '<img src=x onerror=alert(1)> [click](javascript:alert(1)) `code` a|b \\ ![i](x)'
    rows = [{c: "" for c in export.COLUMNS} | {"passage": hostile, "title": "<b>T</b>"}]
    text = export.to_markdown(rows, "<script>x</script>")
    for raw in ("<img", "<b>", "<script>", "[click]", "`code`", "|b", "[i]"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), text), raw  # each only backslash-escaped
    assert export.parse_markdown(text) == rows


def test_theme_labels_come_only_from_passages_the_reader_may_see(fake_kb, tmp_path):
    from ingest.pipeline import ingest_paths
    from kb.models import DocMeta

    src = tmp_path / "src"
    src.mkdir()
    garden = "Volunteers help the community garden grow food every week"
    for i in range(6):
        (src / f"open{i}.md").write_text(f"# Garden {i}\n\n{garden}.")
        (src / f"closed{i}.md").write_text(f"# Garden {i}\n\n{garden}: zanzibarcode, zanzibarcode, zanzibarcode.")
        (src / f"money{i}.md").write_text(f"# Finance {i}\n\nQuarterly budget report for treasury auditors.")
    ingest_paths(fake_kb, sorted(src.glob("open*.md")) + sorted(src.glob("money*.md")),
                 DocMeta(site="A", visibility="partners"))
    ingest_paths(fake_kb, sorted(src.glob("closed*.md")), DocMeta(site="A", visibility="curators"))
    with fake_kb.writing():
        themes.build(fake_kb, k=2)
    shared = sql_rows(
        fake_kb.store, "SELECT count(DISTINCT d.visibility) FROM chunk_themes ct JOIN chunks c ON c.id = ct.chunk_id "
        "JOIN documents d ON d.id = c.doc_id WHERE c.text LIKE '%garden%' GROUP BY ct.theme_id")
    assert [tuple(r) for r in shared] == [(2,)]  # open and closed garden passages share one theme

    def words(visibility):
        return {w.lower() for t in themes.visible_themes(fake_kb, visibility) for phrase in [*t.terms, t.label]
                for w in phrase.split()}

    assert "zanzibarcode" in words(("public", "partners", "curators"))
    assert "zanzibarcode" not in words(("public", "partners"))  # only curators-only documents hold it
    for doc in fake_kb.store.documents(Filters(visibility=("curators",))):
        fake_kb.set_status(doc.id, "retired")  # retired after the themes were built
    assert "zanzibarcode" not in words(("public", "partners", "curators"))
    assert not themes.stale(fake_kb)
