"""Where a PostgreSQL deployment's requests go: pages and searches to the replica, writes to the
primary, a writer's next pages to the primary until the replica has their change; a URL naming
several hosts; a clear 503 while the database is down.

The "replica" here is a copy of the primary's database on the same server. It never catches up,
which makes every routing decision visible; tests/test_scaleout.py runs a real streaming replica.
"""

from __future__ import annotations

import re

import pytest

from ingest.pipeline import ingest_paths
from kb.accounts import Accounts
from kb.collection import KnowledgeBase
from kb.settings import Settings

PASSWORD = "correct horse battery"
KEY = "a key every node shares"


def _kb(tmp_path, model, url: str, replica: str = "") -> KnowledgeBase:
    return KnowledgeBase.open(Settings(data_dir=tmp_path / "data", database_url=url, database_replica_url=replica,
                                       secret_key=KEY), model)


def _write(folder, name: str, text: str):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _token(client, url="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def _hits(client, query: str) -> list[str]:
    response = client.get(f"/api/search?q={query}&mode=keyword")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [hit["title"] for hit in response.get_json()["hits"]]


@pytest.fixture
def primary_and_copy(tmp_path, model, kb_database, postgres_server):
    """A primary holding one document and a curator, and a copy of it taken then (the lagging
    "replica"); afterwards the primary gains a second document the copy never sees."""
    kb = _kb(tmp_path, model, kb_database)
    ingest_paths(kb, [_write(tmp_path / "docs", "old.md", "# Allotments in Croydon\n\nResidents grow vegetables.\n")])
    Accounts(kb.store).add("cur", "curator", PASSWORD)
    kb.close()
    name = kb_database.rsplit("/", 1)[1]
    copy = postgres_server.create_database(f"{name[:50]}_copy", template=name)
    kb = _kb(tmp_path, model, kb_database, copy)
    ingest_paths(kb, [_write(tmp_path / "docs", "new.md", "# Octopus gardens in Plymouth\n\nA new garden.\n")])
    yield kb
    kb.close()
    postgres_server.drop_database(copy.rsplit("/", 1)[1])


def test_pages_read_the_replica_and_a_writer_reads_the_primary_until_the_replica_has_it(primary_and_copy):
    from web import create_app

    app = create_app(primary_and_copy.settings, {"TESTING": True, "START_WORKER": False}, kb=primary_and_copy)
    visitor = app.test_client()
    assert _hits(visitor, "allotments") == ["Allotments in Croydon"]
    assert _hits(visitor, "octopus") == []  # a visitor's search reads the replica, which lacks it

    curator = app.test_client()
    response = curator.post("/login", data={"name": "cur", "password": PASSWORD, "csrf_token": _token(curator)})
    assert response.status_code == 302
    # the sign-in wrote a session the replica does not have: read from it, the curator would be
    # signed out again at once; their requests read the primary until the replica replays it
    assert curator.get("/admin/documents").status_code == 200
    assert _hits(curator, "octopus") == ["Octopus gardens in Plymouth"]
    assert _hits(visitor, "octopus") == []  # everyone else still reads the replica

    health = curator.get("/healthz").get_json()
    assert health["status"] == "ok" and health["database"] == {"reachable": True, "writable": True}
    assert health["replica"] == {"reachable": True, "lag_seconds": None}  # a copy, not in recovery
    anonymous = visitor.get("/healthz").get_json()
    assert anonymous["node"] and "replica" not in anonymous and anonymous["documents"] == 1  # the replica's count


def test_a_url_naming_several_hosts_reaches_the_one_that_takes_writes(tmp_path, model, kb_database):
    from support.postgres import free_port

    # libpq tries the hosts in turn: nothing listens on the first
    where = kb_database.split("@", 1)[1].split("/", 1)
    url = f"postgresql://postgres@127.0.0.1:{free_port()},{where[0]}/{where[1]}?target_session_attrs=read-write"
    kb = _kb(tmp_path, model, url)
    try:
        report = ingest_paths(kb, [_write(tmp_path / "docs", "a.md", "# Walking groups\n\nWalks in Leeds.\n")])
        assert [item.status for item in report.items] == ["added"]
        assert kb.store.count("documents") == 1
    finally:
        kb.close()


def test_a_database_gone_down_is_a_503_to_try_again_that_names_no_server(tmp_path, model):
    from support.postgres import PostgresServer

    from web import create_app

    with PostgresServer() as server:
        url = server.create_database("kb")
        kb = _kb(tmp_path, model, url)
        ingest_paths(kb, [_write(tmp_path / "docs", "a.md", "# Walking groups\n\nWalks in Leeds.\n")])
        app = create_app(kb.settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
        client = app.test_client()
        assert _hits(client, "walking") == ["Walking groups"]
        server.stop()
        response = client.get("/api/search?q=walking")
        assert response.status_code == 503 and response.headers["Retry-After"]
        error = response.get_json()["error"]
        assert error["code"] == "database_unavailable" and "127.0.0.1" not in error["message"]
        page = client.get("/?q=walking")
        assert page.status_code == 503 and "try again" in page.get_data(as_text=True)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
        kb.close()


def test_a_replica_that_does_not_answer_leaves_reads_to_the_primary(tmp_path, model, kb_database):
    from support.postgres import free_port

    from web import create_app

    gone = f"postgresql://postgres@127.0.0.1:{free_port()}/kb"  # nothing listens there
    kb = _kb(tmp_path, model, kb_database, gone)
    try:
        ingest_paths(kb, [_write(tmp_path / "docs", "a.md", "# Walking groups\n\nWalks in Leeds.\n")])
        app = create_app(kb.settings, {"TESTING": True, "START_WORKER": False}, kb=kb)
        client = app.test_client()
        assert _hits(client, "walking") == ["Walking groups"]
        assert _hits(client, "leeds") == ["Walking groups"]  # and again, while the replica is left alone
        health = client.get("/healthz")
        assert health.status_code == 200 and health.get_json()["status"] == "ok"
    finally:
        kb.close()
