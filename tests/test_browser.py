"""End to end in real headless Debian Chromium, driven by Playwright, against the real server."""

from __future__ import annotations

import shutil
import threading

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def live_server(corpus_app):
    from waitress import create_server

    server = create_server(corpus_app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not (ROOT / CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser installs it)")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def test_search_facet_and_open_the_passage(page, live_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(live_server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the query box has focus on load
    page.keyboard.type("how much money did phase two partnerships receive?")
    page.keyboard.press("Enter")
    page.wait_for_selector("ol.hits li.hit")
    assert "£450,000" in page.inner_text("ol.hits")
    assert "q=how+much+money" in page.url
    page.screenshot(path=str(SHOTS / "search-desktop.png"))

    page.click(".facet a:has-text('guidance')")
    page.wait_for_url("**type=guidance**")
    metas = page.locator("ol.hits .meta").all_inner_texts()
    assert metas and all("guidance" in m for m in metas)

    page.click("ol.hits li.hit h2 a >> nth=0")
    page.wait_for_selector("section.chunk.hit")
    target = page.evaluate("location.hash")
    assert target.startswith("#chunk-")
    highlighted = page.locator(f"section{target}")
    assert "hit" in highlighted.get_attribute("class")
    assert highlighted.is_visible()
    box = highlighted.bounding_box()
    assert 0 <= box["y"] < 900, "the matching passage is scrolled into view"
    page.screenshot(path=str(SHOTS / "document-desktop.png"))


def test_phone_width_and_keyboard_only(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(live_server + "/?q=which+partnership+covers+Newham")
    page.wait_for_selector("ol.hits")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling at phone width"
    assert "Area profile: Newham" in page.inner_text("ol.hits li.hit >> nth=0")
    page.screenshot(path=str(SHOTS / "search-phone.png"))
    page.goto(live_server + "/")
    page.wait_for_function("document.activeElement && document.activeElement.name === 'q'")  # autofocus
    page.keyboard.press("Shift+Tab")  # back from the search box: the brand, then the skip link
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused.strip() in ("HCT learning library", "Skip to main content")
    context.close()


def test_pages_work_without_javascript(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + "/")
    page.fill("#q", "volunteers in Plymouth")
    page.click("button[type=submit]")
    page.wait_for_selector("ol.hits li.hit")
    assert "Plymouth" in page.inner_text("ol.hits")
    context.close()


@pytest.fixture
def curator_server(tmp_path, model):
    from waitress import create_server

    from kb.accounts import Accounts
    from kb.collection import KnowledgeBase
    from kb.settings import Settings
    from web import create_app

    settings = Settings(data_dir=tmp_path / "data")
    kb = KnowledgeBase.open(settings, model)
    Accounts(kb.store).add("curator", "curator", "correct horse battery")
    app = create_app(settings, kb=kb)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    app.extensions["worker"].stop()


def test_curator_uploads_a_pdf_and_finds_it(page, curator_server, tmp_path):
    from conftest import make_pdf

    pdf = tmp_path / "befriending.pdf"
    pdf.write_bytes(make_pdf([[("h1", "Befriending"), ("p", "Plymouth volunteers visited isolated older residents every week.")],
                              [("h1", "What we learned"), ("p", "Regular visits eased loneliness more than one-off events.")]]))
    page.goto(curator_server + "/admin/upload")
    assert "/login" in page.url
    page.fill("#name", "curator")
    page.fill("#password", "correct horse battery")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/upload")
    page.set_input_files("#files", str(pdf))
    page.fill("#title", "Befriending in Plymouth")
    page.fill("#site", "Plymouth")
    page.select_option("#visibility", "partners")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/jobs")
    page.wait_for_selector("tr.job.done", timeout=60_000)  # the page refreshes itself while jobs run
    page.screenshot(path=str(SHOTS / "jobs-desktop.png"))
    page.goto(curator_server + "/?q=does+visiting+lonely+older+people+help")
    first = page.locator("ol.hits li.hit >> nth=0")
    assert "Befriending in Plymouth" in first.inner_text()
    first.locator("h2 a").click()
    page.wait_for_selector("section.chunk.hit")
    assert "Regular visits" in page.inner_text("section.chunk.hit") or "visited" in page.inner_text("section.chunk.hit")

    anonymous = page.context.browser.new_context()
    other = anonymous.new_page()
    other.goto(curator_server + "/?q=does+visiting+lonely+older+people+help")
    assert "Befriending in Plymouth" not in other.content()
    anonymous.close()


def test_across_sites_view(page, live_server):
    page.goto(live_server + "/")
    page.click("nav.top-links a:has-text('Across sites')")
    page.fill("#across-q", "what have sites learned about volunteers?")
    page.click(".across-form button[type=submit]")
    page.wait_for_selector(".sites-grid .site-column")
    columns = page.locator(".site-column h2").all_inner_texts()
    assert set(columns) == {"Coventry", "Croydon", "Gloucestershire", "Leeds", "Newham", "Plymouth"}
    plymouth = page.locator(".site-column", has=page.locator("h2", has_text="Plymouth"))
    assert "olunteer" in plymouth.inner_text()
    page.screenshot(path=str(SHOTS / "across-desktop.png"), full_page=True)
    with page.expect_download() as download:
        page.click("p.export a:has-text('CSV')")
    assert download.value.suggested_filename == "kb-across.csv"
