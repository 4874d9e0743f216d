"""The serving path holds no torch, and a real `kb serve` answers many clients and a curator's
upload at once without an error."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT, make_pdf
from cli import main as kb

pytestmark = pytest.mark.model
TORCH_MODULES = ("torch", "transformers", "sentence_transformers")
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, model) -> Path:
    """The sample corpus ingested through the CLI, with a curator account."""
    data = tmp_path_factory.mktemp("serving") / "data"
    assert kb(["--data", str(data), "ingest", str(CORPUS)]) == 0
    done = subprocess.run([sys.executable, "-m", "cli", "--data", str(data), "user", "add", "cur", "--role",
                           "curator", "--password-stdin"], input=PASSWORD + "\n", text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    return data


def test_search_pages_and_read_commands_import_no_torch(data_dir):
    """A fresh interpreter runs kb search, kb docs and kb stats and serves the web app's pages,
    then lists what it imported."""
    script = f"""
import json, sys
from cli import main
from kb.settings import Settings
from web import create_app
data = {str(data_dir)!r}
for argv in (["search", "volunteers", "-k", "3"], ["search", "grant size", "--mode", "dense"], ["docs"], ["stats"]):
    assert main(["--data", data, *argv]) == 0, argv
app = create_app(Settings.from_env(data_dir=data), {{"START_WORKER": False, "TESTING": True}})
client = app.test_client()
statuses = [client.get(url).status_code for url in
            ("/?q=volunteers", "/api/search?q=peer+support&mode=hybrid", "/api/search?q=carers&mode=dense",
             "/doc/1", "/across?q=lived+experience", "/themes", "/api/stats", "/healthz")]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TORCH_MODULES!r})
print(json.dumps({{"statuses": statuses, "loaded": loaded}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [200] * 8
    assert result["loaded"] == []


class Client:
    """A browser-like HTTP client: keeps cookies, reads CSRF tokens, posts forms and files."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=120) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, fields: dict, files: dict | None = None) -> int:
        fields = {**fields, "csrf_token": self.token(path)}
        boundary = uuid.uuid4().hex
        body = b""
        for name, value in fields.items():
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, (filename, data) in (files or {}).items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.base + path, data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def token(self, path: str) -> str:
        status, page = self.get(path)
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def server(data_dir):
    """`kb serve` as its own process on loopback, stopped by its PID."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(data_dir.parent / "serve.log", "wb")  # a file, never a pipe nobody reads
    process = subprocess.Popen([sys.executable, "-m", "cli", "--data", str(data_dir), "serve", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("kb serve did not answer within 120 s: " + (data_dir.parent / "serve.log").read_text()[-2000:])
    yield base, process.pid
    process.terminate()
    process.wait(timeout=30)
    log.close()


def torch_in_maps(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines()
                   if re.search(r"libtorch|/torch/lib/|/transformers/", line)})


def test_eight_clients_search_while_a_curator_uploads_and_no_torch_is_loaded(server):
    base, pid = server
    curator = Client(base)
    assert curator.post("/login", {"name": "cur", "password": PASSWORD}) in (200, 302)
    words = ["volunteers", "carers", "lived experience", "grant", "Newham", "Plymouth", "trust", "food",
             "loneliness", "young people", "council", "evaluation"]
    errors, answered, stop = [], [], threading.Event()

    def searcher(n: int) -> None:
        """Distinct searches until the upload is found, and at least 10 of them."""
        client = Client(base)
        i = 0
        while not stop.is_set() or i < 10:
            q = f"{words[(n + i) % len(words)]} {words[(3 * n + i) % len(words)]} {n}-{i}"
            path = ("/api/search?" if i % 2 else "/?") + urllib.parse.urlencode(
                {"q": q, "mode": ("hybrid", "dense", "keyword")[i % 3]})
            try:
                status, body = client.get(path)
            except OSError as exc:  # a refused or reset connection is an error like a 500
                status, body = None, repr(exc)
            if status != 200:
                errors.append((path, status, body[:200]))
            answered.append(n)
            i += 1

    threads = [threading.Thread(target=searcher, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        pdf = make_pdf([[("h1", "Allotments"), ("p", "Tenants of the Riverside estate grew vegetables on shared "
                                                      "allotments and met their neighbours every Saturday.")]])
        status = curator.post("/admin/upload", {"title": "Riverside allotments", "visibility": "public"},
                              {"files": ("allotments.pdf", pdf)})
        assert status in (200, 302)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body = Client(base).get("/api/search?" + urllib.parse.urlencode({"q": "Riverside allotments"}))
            if status == 200 and any(h["title"] == "Riverside allotments" for h in json.loads(body)["hits"]):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the upload never became searchable")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(answered) >= 80 and set(answered) == set(range(8))
    assert torch_in_maps(pid) == []  # the upload was embedded by the same ONNX encoder
