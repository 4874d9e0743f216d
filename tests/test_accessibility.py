"""WCAG 2.2 AA in real Debian Chromium: axe-core on every page (tests/support/tour.py) for each
role at desktop and phone width, then what axe cannot see: sideways scrolling, the contrast of form
borders, visible focus, where focus starts, and the key presses a task takes.

axe-core is the npm package pinned in package-lock.json (`make axe`, which `make test` runs)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT
from support.tour import CHROMIUM_ARGS, PASSWORD, QUESTION, ROLES, WIDTHS, furnish, serving, sign_in, stops

pytestmark = pytest.mark.browser
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
REPORTS = ROOT / "artifacts" / "accessibility"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# axe's verdicts: violations (must be none), and for the record the rules that passed and those it
# could not decide alone ("incomplete": a colour over a gradient, say), which were looked at by hand
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return {violations: result.violations.map(v => ({rule: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
                                                   nodes: v.nodes.slice(0, 4).map(n => n.target.join(' '))})),
          passed: result.passes.map(r => r.id),
          incomplete: result.incomplete.map(r => `${r.id}: ${r.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)};
}"""

# What axe leaves alone: the page wider than the screen, scrolling boxes nobody can reach or
# name, and form fields whose edges are too faint to find (WCAG 1.4.11: 3:1 against what is behind).
PAGE_CHECKS = """(viewport) => {
  const problems = [];
  if (document.scrollingElement.scrollWidth > viewport)
    problems.push(`the page scrolls sideways: ${document.scrollingElement.scrollWidth}px on a ${viewport}px screen`);
  const rgb = text => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const behind = el => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length === 3 || colour[3] > 0) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const name = el => el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}.${el.className}`;
  for (const el of document.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1 && el !== document.scrollingElement) {
      const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (el.getAttribute('role') !== 'region' || !named || el.tabIndex !== 0)
        problems.push(`${name(el)} scrolls sideways but is not a named, focusable region`);
    }
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]):not([type=file]), select, textarea')) {
    const style = getComputedStyle(el);
    if (!el.offsetParent || (['checkbox', 'radio'].includes(el.type) && style.appearance !== 'none')) continue;  // drawn by the browser
    const contrast = ratio(rgb(style.borderTopColor), behind(el));
    if (parseFloat(style.borderTopWidth) < 1 || contrast < 3)
      problems.push(`${name(el)}: border ${style.borderTopWidth} ${style.borderTopColor}, ${contrast.toFixed(2)}:1`);
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not (ROOT / CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser installs it)")
    if not AXE.exists():
        pytest.skip("axe-core is not installed (make axe installs it)")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def site_app(corpus_kb, tmp_path_factory):
    """The corpus copied into a collection of its own (nothing embedded again), with an account per
    role and finished jobs; no worker runs, so nothing changes while the pages are checked."""
    from kb.collection import KnowledgeBase
    from kb.settings import Settings
    from kb.transfer import copy_collection
    from web import create_app

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path_factory.mktemp("a11y") / "data"), corpus_kb.embedder)
    copy_collection(corpus_kb, kb)
    app = create_app(kb.settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
    app.extensions["furnished"] = furnish(kb)
    yield app
    kb.close()


@pytest.fixture(scope="module")
def site(site_app):
    with serving(site_app) as url:
        yield url, site_app.extensions["furnished"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe(browser, site, site_app, role, width):
    base, furnished = site
    context = browser.new_context(bypass_csp=True, **WIDTHS[width])  # the app's CSP refuses injected scripts
    page = context.new_page()
    sign_in(page, base, role)
    report, problems = {}, []
    for stop in stops(furnished, site_app.view_functions):
        if role not in stop.roles:
            continue
        page.goto(base + stop.path)
        if stop.then:
            stop.then(page)
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(RUN_AXE, TAGS)
        violations = found["violations"]
        if page.locator("details:not([open])").count():  # and once more with every panel open
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            violations += [dict(v, rule=f"{v['rule']} (panels open)") for v in page.evaluate(RUN_AXE, TAGS)["violations"]]
        others = page.evaluate(PAGE_CHECKS, WIDTHS[width]["viewport"]["width"])
        report[stop.name] = {"axe": violations, "other": others, "passed": len(found["passed"]),
                             "incomplete": found["incomplete"]}
        problems += [f"{stop.name}: {v['rule']} ({v['impact']}, {v['count']}): {v['help']} {v['nodes']}" for v in violations]
        problems += [f"{stop.name}: {problem}" for problem in others]
    context.close()
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{role}-{width}.json").write_text(json.dumps(report, indent=1))
    assert report and not problems, "\n".join(problems)


KEY_RULES = {"color-contrast", "target-size", "aria-allowed-attr", "landmark-unique", "scrollable-region-focusable",
             "label", "region", "heading-order", "link-name", "button-name"}


def test_axe_really_checked_the_rules_that_matter(browser, site):
    """An update of axe that renamed or retagged a rule would otherwise pass in silence."""
    base, furnished = site
    context = browser.new_context(bypass_csp=True, **WIDTHS["phone"])
    page = context.new_page()
    sign_in(page, base, "curator")
    passed = set()
    for path in ("/?q=volunteers&site=Plymouth", "/admin/documents", "/login"):
        page.goto(base + path)
        page.add_script_tag(path=str(AXE))
        passed |= set(page.evaluate(RUN_AXE, TAGS)["passed"])
    context.close()
    assert KEY_RULES <= passed, KEY_RULES - passed


@pytest.mark.parametrize("role", ["anonymous", "curator"])
def test_nothing_scrolls_sideways_at_320_pixels(browser, site, site_app, role):
    """WCAG 1.4.10 reflow: 320 CSS pixels, as a 1280-pixel screen at 400% zoom."""
    base, furnished = site
    context = browser.new_context(viewport={"width": 320, "height": 640}, is_mobile=True)
    page = context.new_page()
    sign_in(page, base, role)
    wide = {}
    for stop in stops(furnished, site_app.view_functions):
        if role in stop.roles:
            page.goto(base + stop.path)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            if width > 320:
                wide[stop.name] = width
    context.close()
    assert not wide


@pytest.mark.parametrize("width", WIDTHS)
def test_keyboard_search_then_open_the_first_result(browser, site, width):
    """From the search box: Enter, then the skip link to the results, then the first result: five
    key presses in all, however many filters the page offers."""
    base, _ = site
    context = browser.new_context(**WIDTHS[width])
    page = context.new_page()
    page.goto(base + "/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(QUESTION)
    presses = Presses(page)
    presses("Enter")
    page.wait_for_selector("ol.hits li.hit")
    first = page.get_attribute("ol.hits li.hit h2 a >> nth=0", "href")
    presses("Tab")
    assert focused(page) == "Skip to results"
    presses("Enter")
    presses("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == first
    presses("Enter")
    page.wait_for_selector("section.chunk.hit")
    assert page.url == base + first
    assert presses.count == 5
    context.close()


def test_keyboard_sign_in(browser, site):
    base, _ = site
    context = browser.new_context(**WIDTHS["desktop"])
    page = context.new_page()
    page.goto(base + "/login")
    assert page.evaluate("document.activeElement.id") == "name"  # the page's task, not the search box
    presses = Presses(page)
    page.keyboard.type("partner")
    presses("Tab")
    page.keyboard.type(PASSWORD)
    presses("Enter")
    page.wait_for_url(base + "/")
    assert "Signed in as partner" in page.inner_text("main")
    assert presses.count == 2
    context.close()


def test_keyboard_upload_as_curator(browser, upload_site, tmp_path):
    """Sign in, then on the upload page (the file field has focus): choose a file, give a title and
    send it, then see it done on the jobs page: three key presses after signing in."""
    from conftest import make_pdf

    pdf = tmp_path / "walking-groups.pdf"
    pdf.write_bytes(make_pdf([[("h1", "Walking groups"), ("p", "Weekly walks in Newham drew isolated residents out.")]]))
    context = browser.new_context(**WIDTHS["desktop"])
    page = context.new_page()
    sign_in(page, upload_site, "curator")
    page.goto(upload_site + "/admin/upload")
    assert page.evaluate("document.activeElement.id") == "files"
    presses = Presses(page)
    with page.expect_file_chooser() as chooser:
        presses("Space")
    chooser.value.set_files(str(pdf))
    presses("Tab")
    assert page.evaluate("document.activeElement.id") == "title"
    page.keyboard.type("Walking groups in Newham")
    presses("Enter")
    page.wait_for_url("**/admin/jobs")
    page.wait_for_selector("tr.job.done", timeout=60_000)
    assert "walking-groups.pdf" in page.inner_text("tr.job.done")
    assert presses.count == 3
    context.close()


@pytest.mark.parametrize(("role", "path", "focus"), [
    ("anonymous", "/", "q"),
    ("anonymous", "/login", "name"),
    ("partner", "/account/password", "current_password"),
    ("curator", "/admin/upload", "files"),
    ("anonymous", "/across", "across-q"),
    ("anonymous", f"/?q={QUESTION}", None),  # after a search the skip link leads to the results
    ("anonymous", "/across?q=volunteers", None),
    ("anonymous", "/themes", None),
    ("anonymous", "/site/Plymouth", None),
    ("anonymous", "/accessibility", None),
    ("anonymous", "/no/such/page", None),
    ("curator", "/admin/documents", None),
])
def test_focus_starts_where_the_task_is(browser, site, role, path, focus):
    base, _ = site
    context = browser.new_context(**WIDTHS["desktop"])
    page = context.new_page()
    sign_in(page, base, role)
    page.goto(base + path)
    if focus is not None:  # the browser moves focus to an autofocus field when it next renders, after load
        page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=focus,
                               timeout=5_000)
    assert page.evaluate("document.activeElement === document.body ? null : document.activeElement.id") == focus
    context.close()


def test_a_failed_sign_in_puts_focus_on_the_error_summary(browser, site):
    base, _ = site
    context = browser.new_context(**WIDTHS["desktop"])
    page = context.new_page()
    page.goto(base + "/login")
    page.keyboard.type("partner")
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-summary")
    assert page.evaluate("document.activeElement.className") == "error-summary"
    assert page.title().startswith("Error: ")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the error's link leads to the field
    assert page.evaluate("location.hash") == "#name"
    context.close()


FOCUS_STYLE = """() => {
  const el = document.activeElement, style = getComputedStyle(el), box = el.getBoundingClientRect();
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 && !/rgba\\(.*, 0\\)$/.test(style.outlineColor);
  const text = (el.innerText || el.value || el.id || el.tagName).trim().slice(0, 40);
  const yellow = style.backgroundColor === 'rgb(255, 221, 0)';  // the skip link, shown on focus
  return {text, visible: outline || yellow || style.boxShadow !== 'none', size: [box.width, box.height]};
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("role", "path"), [("anonymous", "/?q=volunteers&tag=volunteers"),
                                            ("curator", "/admin/jobs"), ("curator", "/admin/documents"),
                                            ("partner", "/account/password")])
def test_every_stop_of_the_tab_order_shows_focus(browser, site, role, path, width):
    """WCAG 2.4.7: Tab through the whole page; each link, button, field and scrolling box shows focus."""
    base, _ = site
    context = browser.new_context(**WIDTHS[width])
    page = context.new_page()
    sign_in(page, base, role)
    page.goto(base + path)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    seen, unseen = 0, []
    for _ in range(150):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break
        seen += 1
        state = page.evaluate(FOCUS_STYLE)
        if not state["visible"] or min(state["size"]) < 1:
            unseen.append(state)
    context.close()
    assert seen > 3 and not unseen, unseen


def test_the_statement_names_the_axe_core_the_tests_use(site):
    """The statement says which axe-core checked the pages: the one package-lock.json pins."""
    from urllib.request import urlopen

    base, _ = site
    pinned = json.loads((ROOT / "package-lock.json").read_text())["packages"]["node_modules/axe-core"]["version"]
    html = urlopen(base + "/accessibility").read().decode()
    assert f"axe-core</a> {pinned}" in html
    assert "partially compliant with the" in html and "original files not checked" in html and "Equality Advisory and Support Service" in html
    assert "Equality Commission for Northern Ireland" in html
    assert 'href="/accessibility">Accessibility statement</a>' in urlopen(base + "/").read().decode()


def test_the_statement_gives_the_contact_address_when_set(site_app):
    site_app.config["CONTACT_EMAIL"] = "access@example.org"
    try:
        html = site_app.test_client().get("/accessibility").get_data(as_text=True)
    finally:
        site_app.config["CONTACT_EMAIL"] = ""
    assert html.count('<a href="mailto:access@example.org">access@example.org</a>') == 2


@pytest.mark.parametrize("address", ["nobody", "two@@example.org", "a b@example.org", "x@localhost"])
def test_a_contact_address_must_look_like_one(address):
    from kb.errors import ConfigError
    from kb.settings import Settings

    with pytest.raises(ConfigError, match="KB_CONTACT_EMAIL"):
        Settings.from_env({"KB_CONTACT_EMAIL": address})


class Presses:
    """Key presses, counted."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def __call__(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.count += 1


def focused(page) -> str:
    return page.evaluate("document.activeElement.textContent").strip()


@pytest.fixture
def upload_site(tmp_path, model):
    """An empty collection with a curator and a running worker, for an upload from start to finish."""
    from kb.accounts import Accounts
    from kb.collection import KnowledgeBase
    from kb.settings import Settings
    from web import create_app

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data"), model)
    Accounts(kb.store).add("curator", "curator", PASSWORD)
    app = create_app(kb.settings, kb=kb)
    with serving(app) as url:
        yield url
    app.extensions["worker"].stop()
    kb.close()
