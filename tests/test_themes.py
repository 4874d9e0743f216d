"""Themes people can read and own: labels are phrases of whole words, themes that read alike are
merged, and a curator's name follows its theme through rebuilds (on both backends) until the
theme is gone."""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import numpy as np
import pytest

from cli import main
from ingest.pipeline import ingest_paths
from kb import audit, labels, themes
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.errors import BadRequest, NotFound
from kb.models import VISIBILITIES, Filters
from kb.settings import Settings
from kb.storage.themes import NamedTheme

EVERYONE = VISIBILITIES
PASSWORD = "correct horse battery"


class Passage(NamedTuple):
    doc_id: int
    heading: str
    text: str


# text as PDF extraction leaves it: a word broken at a line end, a ligature lost to a glyph or a
# space, and a ligature kept (which NFKC turns back into "ff")
DAMAGED = ("Volunteer peer support made a diff-\nerent kind of help possible. di\ufffderent groups met "
           "in Ap ril, and the e ective ones kept volunteer peer support going. A diﬀerent rota helped.")
BUDGET = "The quarterly budget report went to the treasury auditors, who read the quarterly budget report twice."


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*", unicodedata.normalize("NFKC", text).lower()))


@pytest.mark.parametrize("text, expected", [
    ("a diff-\nerent approach", [["approach"]]),
    ("di\ufffderent groups", [["groups"]]),
    ("met in Ap ril meetings", [["met"], ["meetings"]]),
    ("the e ective ones", [["ones"]]),
    ("a diﬀerent rota", [["different", "rota"]]),
    ("soft\u00adhyphen", [["softhyphen"]]),
    ("co-production works; £50,000 grants", [["co-production", "works"], ["grants"]]),
    ("Lived experience of poor mental health", [["Lived", "experience"], ["poor", "mental", "health"]]),
    ("UK charities", [["charities"]]),
])
def test_runs_hold_only_whole_words(text, expected):
    assert [[w for w, _ in run] for run in labels.runs(text)] == expected


def test_label_words_are_whole_words_never_fragments():
    groups = {1: [Passage(d, "Volunteers", DAMAGED) for d in range(4)],
              2: [Passage(d, "Money", BUDGET) for d in range(4, 8)]}
    described = labels.label(groups)
    seen = set().union(*(words_of(p.text) | words_of(p.heading) for ps in groups.values() for p in ps))
    for d in described.values():
        used = words_of(" ".join([d.label, *d.terms]))
        assert used and used <= seen
        assert not used & {"erent", "ril", "ective", "diff", "di"}
    assert described[1].label == "Volunteer peer support"
    assert described[2].label == "Quarterly budget report"


def test_a_word_seen_in_one_document_only_names_nothing():
    groups = {1: [Passage(1, "", "Zanzibarcode zanzibarcode helps volunteers."),
                  Passage(2, "", "Volunteers help."), Passage(3, "", "Volunteers help again.")],
              2: [Passage(4, "", "Budget reports."), Passage(5, "", "Budget reports again.")]}
    described = labels.label(groups)
    assert "zanzibarcode" not in " ".join([described[1].label, *described[1].terms]).lower()
    assert described[1].terms[0] == "Volunteers"


def test_two_groups_never_share_a_label():
    same = "Volunteer peer support met every week in the library."
    groups = {1: [Passage(d, "", same + " Tea and biscuits kept the volunteers talking.") for d in range(3)],
              2: [Passage(d, "", same + " Train journeys took the volunteers to the coast.") for d in range(3, 6)]}
    described = labels.label(groups)
    assert described[1].label != described[2].label
    assert all(d.label for d in described.values())


def _points(centre: np.ndarray, n: int, rng) -> np.ndarray:
    out = centre + 0.02 * rng.standard_normal((n, len(centre)))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_clusters_that_are_one_theme_merge_and_others_stay():
    rng = np.random.default_rng(7)
    e = np.eye(8)
    centres = [e[0], _unit(e[0] + 0.33 * e[1]), _unit(e[0] + 0.75 * e[2]), _unit(e[0] + 0.75 * e[3]), e[4]]
    texts = [DAMAGED, "Allotment plots grew vegetables for the food bank.", DAMAGED, BUDGET, BUDGET]
    vectors, assignment, groups = [], [], {}
    for cluster, (centre, text) in enumerate(zip(centres, texts)):
        vectors.append(_points(centre, 4, rng))
        assignment += [cluster] * 4
        groups[cluster] = [Passage(cluster * 10 + i, "", text) for i in range(4)]
    vectors = np.vstack(vectors).astype(np.float32)
    profiles, vocabulary = labels.read(groups)
    merged, profiles = themes.merge(vectors, np.asarray(assignment), profiles, vocabulary)
    partition = sorted(sorted({a for a, m in zip(assignment, merged) if m == c}) for c in set(merged))
    # 0 and 1: centres at 0.95; 0 and 2: at 0.8, reading alike; 3: at 0.8 from 0 but about money;
    # 4: about money too, but its centre is far from 3's
    assert partition == [[0, 1, 2], [3], [4]]
    assert sorted(profiles) == sorted(set(merged)) and sum(p.size for p in profiles.values()) == 20


def test_names_pass_to_the_closest_new_theme_one_to_one():
    e = np.eye(4, dtype=np.float32)
    near = _unit(e[0] + 0.1 * e[1]).astype(np.float32)
    named = [NamedTheme(1, "Gardens", e[0]), NamedTheme(2, "Allotments", near), NamedTheme(3, "Gone", e[3]),
             NamedTheme(4, "Another model", np.ones(7, dtype=np.float32)), NamedTheme(5, "Before centres", None)]
    new = np.stack([_unit(e[0] + 0.12 * e[1]), e[0], e[2]]).astype(np.float32)
    assert themes.carry_names(named, new) == {1: "Gardens", 0: "Allotments"}
    assert themes.carry_names(named, new[1:]) == {0: "Gardens"}  # one theme keeps one name


TOPICS = {
    "garden": "Volunteers help the community garden grow food; the community garden needs volunteers every week.",
    "money": "Quarterly budget report for treasury auditors; the quarterly budget report balances.",
    "walking": "Walking groups meet in the park; walking groups welcome new walkers each morning.",
}


def _ingest(kb, folder, topic: str, count: int, start: int = 0):
    folder.mkdir(exist_ok=True)
    paths = []
    for n in range(start, start + count):
        path = folder / f"{topic}{n}.md"
        path.write_text(f"# {topic.title()} note {n}\n\n{TOPICS[topic]}\n")
        paths.append(path)
    ingest_paths(kb, paths)


def _theme_of(kb, topic: str):
    """The theme holding the documents about this topic, as everyone sees it."""
    for t in themes.visible_themes(kb, EVERYONE):
        titles = {d.title for d in themes.theme_documents(kb, t.id, EVERYONE)}
        if titles and all(topic.title() in title for title in titles):
            return t
    return None


def _rebuild(kb, k=3):
    with kb.writing():
        return themes.build(kb, k=k)


def test_a_name_survives_rebuilds_of_its_theme_and_goes_with_it(fake_kb, tmp_path):
    folder = tmp_path / "src"
    for topic in TOPICS:
        _ingest(fake_kb, folder, topic, 4)
    _rebuild(fake_kb)
    garden = _theme_of(fake_kb, "garden")
    assert garden and garden.name is None
    assert themes.rename(fake_kb, garden.id, "  Community   gardens ") == "Community gardens"
    assert _theme_of(fake_kb, "garden").label == "Community gardens"

    _rebuild(fake_kb)  # the same collection
    assert (_theme_of(fake_kb, "garden").name, _theme_of(fake_kb, "garden").label) == ("Community gardens",) * 2
    assert [t.name for t in themes.visible_themes(fake_kb, EVERYONE)].count("Community gardens") == 1

    _ingest(fake_kb, folder, "garden", 2, start=4)  # the theme grows but stays the same
    _rebuild(fake_kb)
    assert _theme_of(fake_kb, "garden").name == "Community gardens"

    for doc in fake_kb.store.documents(Filters(visibility=EVERYONE)):
        if doc.title.startswith("Garden"):
            fake_kb.remove(doc.id)
    _rebuild(fake_kb, k=2)  # the garden theme is gone, and its name with it
    assert all(t.name is None for t in themes.visible_themes(fake_kb, EVERYONE))
    assert fake_kb.store.themes.named() == []


def test_revision_0005_adds_names_and_centres_to_stored_themes(fake_kb, tmp_path):
    """Themes built before 0005 keep their rows (no name, no centre); the next build fills the centres."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from kb.storage.migrate import SCRIPTS

    for topic in TOPICS:
        _ingest(fake_kb, tmp_path / "src", topic, 2)
    built = _rebuild(fake_kb, k=2)
    with fake_kb.store.db.transaction(bump=None) as conn:
        conn.execute(text("ALTER TABLE themes DROP COLUMN name"))
        conn.execute(text("ALTER TABLE themes DROP COLUMN centroid"))
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = conn
        command.stamp(config, "0004", purge=True)
        command.upgrade(config, "0005")
        rows = conn.execute(text("SELECT id, label, name, centroid FROM themes ORDER BY id")).all()
        command.stamp(config, "head", purge=True)
    assert [tuple(r) for r in rows] == [(t.id, t.label, None, None) for t in built]
    assert {t.id for t in themes.visible_themes(fake_kb, EVERYONE)} == {t.id for t in built}
    themes.rename(fake_kb, built[0].id, "Before centres")
    assert fake_kb.store.themes.named()[0].centroid is None
    _rebuild(fake_kb, k=2)  # a name from before centres were kept has nothing to follow
    assert fake_kb.store.themes.named() == []
    themes.rename(fake_kb, 1, "After")
    assert fake_kb.store.themes.named()[0].centroid.shape == (fake_kb.embedder.dim,)


def test_a_name_is_checked_and_cleared(fake_kb, tmp_path):
    for topic in TOPICS:
        _ingest(fake_kb, tmp_path / "src", topic, 2)
    built = _rebuild(fake_kb, k=2)
    with pytest.raises(BadRequest, match="at most 80"):
        themes.rename(fake_kb, built[0].id, "x" * 81)
    with pytest.raises(NotFound):
        themes.rename(fake_kb, 999, "Nowhere")
    themes.rename(fake_kb, built[0].id, "Named")
    assert themes.rename(fake_kb, built[0].id, "   ") is None
    shown = {t.id: t for t in themes.visible_themes(fake_kb, EVERYONE)}[built[0].id]
    assert shown.name is None and shown.label == shown.computed != ""


def test_curators_name_a_theme_on_the_themes_page_and_everyone_sees_it(tmp_path, model, database_url):
    from web import create_app

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        secret_key="a key every node shares" if database_url else "")
    kb = KnowledgeBase.open(settings, model)
    for topic in TOPICS:
        _ingest(kb, tmp_path / "src", topic, 3)
    built = _rebuild(kb)
    Accounts(kb.store).add("cur", "curator", PASSWORD)
    Accounts(kb.store).add("par", "partner", PASSWORD)
    app = create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
    curator, partner = _sign_in(app, "cur"), _sign_in(app, "par")
    page = curator.get("/themes").get_data(as_text=True)
    assert 'action="/admin/themes/name"' in page
    assert 'action="/admin/themes/name"' not in partner.get("/themes").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    name = "Volunteer <b>peer</b> support"

    assert curator.post("/admin/themes/name", data={"theme": built[0].id, "name": name}).status_code == 400
    assert partner.post("/admin/themes/name", data={"theme": built[0].id, "name": name,
                                                    "csrf_token": token}).status_code in (400, 403)
    answer = curator.post("/admin/themes/name", data={"theme": built[0].id, "name": name, "csrf_token": token})
    assert answer.status_code == 302
    assert curator.post("/admin/themes/name", data={"theme": "x", "name": name, "csrf_token": token}).status_code == 400

    escaped = "Volunteer &lt;b&gt;peer&lt;/b&gt; support"
    for client in (app.test_client(), partner, curator):
        assert escaped in client.get("/themes").get_data(as_text=True)
    assert escaped in app.test_client().get(f"/themes/{built[0].id}").get_data(as_text=True)
    assert [t["name"] for t in app.test_client().get("/api/themes").get_json()["themes"]].count(name) == 1
    assert "theme_name" in {e.action for e in audit.entries(kb.store)}
    kb.close()


def _sign_in(app, name):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token}).status_code == 302
    return client


def test_kb_themes_rename_and_list(fake_kb, tmp_path, capsys):
    for topic in TOPICS:
        _ingest(fake_kb, tmp_path / "src", topic, 2)
    built = _rebuild(fake_kb, k=2)
    data = ["--data", str(fake_kb.data_dir), "--database-url", fake_kb.settings.database_url, "--model", "fake"]
    assert main([*data, "themes", "rename", str(built[0].id), "Walking and gardens"]) == 0
    assert main([*data, "themes", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{built[0].id:>3}. Walking and gardens" in out and f"labelled {built[0].label!r}" in out
    assert main([*data, "themes", "rename", "99", "Nowhere"]) == 1
    assert "no theme 99" in capsys.readouterr().err
    assert main([*data, "themes", "rename", str(built[0].id), ""]) == 0
    assert "Walking and gardens" not in (main([*data, "themes", "list"]), capsys.readouterr().out)[1]
