"""`kb serve` as a separate process on loopback, and HTTP clients for it (bounded in count and time)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from .common import Latency, peak_rss_mb

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """One `kb serve` process; `start` returns the seconds from launch to the first search answer."""

    def __init__(self, data_dir: Path, threads: int = 8, env: dict | None = None, log: Path | None = None):
        self.data_dir, self.threads = Path(data_dir), threads
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0, probe: str = "first answer") -> float:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "--data", str(self.data_dir), "serve", "--host", HOST,
             "--port", str(self.port), "--threads", str(self.threads)],
            stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kb serve exited with status {self.process.returncode} (log: {self.log})")
            try:
                status, _ = request(self.port, "/api/search?" + urlencode({"q": probe, "k": 10}), timeout=timeout)
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"kb serve gave no answer within {timeout:.0f} s")

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid) if self.process else float("nan")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def request(port: int, path: str, timeout: float = 60.0, conn: http.client.HTTPConnection | None = None):
    """GET `path`; returns (status, parsed JSON or None). Reuses `conn` (keep-alive) when given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        return response.status, payload
    finally:
        if own:
            conn.close()


def search_path(query: str, mode: str = "hybrid", k: int = 10) -> str:
    return "/api/search?" + urlencode({"q": query, "k": k, "mode": mode})


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: int
    seconds: float
    latency: Latency

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(port: int, queries: list[str], clients: int, seconds: float, mode: str = "hybrid",
         max_requests: int | None = None) -> LoadResult:
    """`clients` threads, each on its own keep-alive connection and its own share of the queries
    (none repeats), until `seconds` pass, the queries run out or `max_requests` are done."""
    shares = [queries[i::clients] for i in range(clients)]
    cap = max_requests or len(queries)
    lock = threading.Lock()
    millis: list[float] = []
    errors = [0]
    done = [0]
    deadline = time.perf_counter() + seconds

    def client(share: list[str]) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            for query in share:
                if time.perf_counter() >= deadline:
                    return
                with lock:
                    if done[0] >= cap:
                        return
                    done[0] += 1
                started = time.perf_counter()
                try:
                    status, payload = request(port, search_path(query, mode), conn=conn)
                    ok = status == 200 and payload is not None and "hits" in payload
                except OSError:
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=60)
                took = (time.perf_counter() - started) * 1000
                with lock:
                    millis.append(took)
                    errors[0] += 0 if ok else 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return LoadResult(clients, len(millis), errors[0], elapsed, Latency.of(millis))
