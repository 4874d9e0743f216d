"""Where a PostgreSQL deployment's requests go: pages and searches to the replica, writes to the
primary, a writer's next pages to the primary until the replica has their change; a URL naming
several hosts; a clear 503 while the database is down.

The "replica" here is a copy of the primary's database on the same server. It never catches up,
which makes every routing decision visible; tests/test_scaleout.py runs a real streaming replica.
"""

from __future__ import annotations

import itertools
import re
import time

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


@pytest.fixture(scope="module")
def replicated():
    """A primary made for replication and a streaming replica of it (tests/support/postgres.py)."""
    from support.postgres import PostgresReplica, PostgresServer, PostgresUnavailable

    try:
        primary = PostgresServer(replication=True)
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL binaries: {error}")
    with primary, PostgresReplica(primary, "routing") as replica:
        yield primary, replica


@pytest.fixture
def lagging(tmp_path, model, replicated):
    """A primary holding one document and a curator, streamed to a replica that then stops
    replaying: the primary's second document never reaches it."""
    primary, replica = replicated
    name = f"kb{next(_databases)}"
    url = primary.create_database(name)
    kb = _kb(tmp_path, model, url)
    ingest_paths(kb, [_write(tmp_path / "docs", "old.md", "# Allotments in Croydon\n\nResidents grow vegetables.\n")])
    Accounts(kb.store).add("cur", "curator", PASSWORD)
    kb.close()
    _wait_replayed(primary, replica)
    replica.execute("postgres", "SELECT pg_wal_replay_pause()")
    kb = _kb(tmp_path, model, url, replica.url_for(name))
    ingest_paths(kb, [_write(tmp_path / "docs", "new.md", "# Octopus gardens in Plymouth\n\nA new garden.\n")])
    yield kb
    kb.close()
    replica.execute("postgres", "SELECT pg_wal_replay_resume()")


_databases = itertools.count(1)


def _wait_replayed(primary, replica, timeout: float = 30.0) -> None:
    import psycopg

    with psycopg.connect(primary.url, autocommit=True) as conn:
        (position,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    deadline = time.monotonic() + timeout
    with psycopg.connect(replica.url, autocommit=True) as conn:
        while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s", [position]).fetchone()[0]:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)


def test_pages_read_the_replica_and_a_writer_reads_the_primary_until_the_replica_has_it(lagging):
    from web import create_app

    app = create_app(lagging.settings, {"TESTING": True, "START_WORKER": False}, kb=lagging)
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
    assert health["replica"]["reachable"] and health["replica"]["lag_bytes"] > 0
    anonymous = visitor.get("/healthz").get_json()
    assert anonymous["node"] and "replica" not in anonymous and anonymous["documents"] == 1  # the replica's count


def test_a_replica_that_stops_keeping_up_serves_no_reads(lagging, monkeypatch):
    import kb.storage.database as database

    from web import create_app

    monkeypatch.setattr(database, "REPLICA_MAX_LAG_SECONDS", 0.3)
    monkeypatch.setattr(database, "REPLICA_RETRY_SECONDS", 0.1)
    app = create_app(lagging.settings, {"TESTING": True, "START_WORKER": False}, kb=lagging)
    visitor = app.test_client()
    deadline = time.monotonic() + 10
    while _hits(visitor, "octopus") == []:  # the replica's replay is paused: it falls behind for good
        assert time.monotonic() < deadline, "reads stayed on a replica that stopped replaying"
        time.sleep(0.1)
    assert not lagging.store.db.replica_usable()


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
