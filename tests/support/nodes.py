"""`kb serve` nodes as real processes on loopback, for the scale-out tests and by hand.

Each node is `python -m cli serve --host 127.0.0.1 --port PORT` (what the `kb` entry point runs)
with the environment it is given (KB_DATABASE_URL, KB_SECRET_KEY, ...), a data folder of its own
(KB_DATA: on PostgreSQL it holds only caches) and KB_NODE_NAME set to its name. `start()` waits
until /healthz answers 200; `kill()` sends SIGKILL to its PID, `stop()` SIGINT (then SIGKILL);
`start()` again brings it back on the same port. Output goes to `<folder>/<name>.log`.

    node = KbNode("a", folder, {"KB_DATABASE_URL": url, "KB_SECRET_KEY": key}).start()
    node.kill(); node.start()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

from support.postgres import free_port
from support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]


def kb_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment with `env` over it, offline (the bundled model only)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}


def _interruptible() -> None:
    """In the child, before kb starts: SIGINT stops it (Ctrl-C's KeyboardInterrupt), even when the
    tests run in the background of a shell, whose children inherit SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_kb(args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 300) -> str:
    """Run one `kb` command (`python -m cli ARGS`) to its end; its output, or an AssertionError with it."""
    result = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], input=input, capture_output=True,
                            text=True, env=kb_env(env), cwd=ROOT, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"kb {' '.join(map(str, args))} exited with {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result.stdout


class KbNode:
    """One `kb serve` process on 127.0.0.1; see the module's docstring."""

    def __init__(self, name: str, folder: str | os.PathLike, env: dict[str, str], port: int | None = None,
                 start_timeout: float = 120.0):
        self.name = name
        self.folder = Path(folder)
        self.env = dict(env)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def __enter__(self) -> KbNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, wait: bool = True) -> KbNode:
        """Start `kb serve`; with `wait`, until its /healthz answers 200 (else see wait_ready)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"node {self.name} is already running")
        data = self.folder / self.name
        data.mkdir(parents=True, exist_ok=True)
        env = kb_env({**self.env, "KB_DATA": str(data), "KB_NODE_NAME": self.name})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                preexec_fn=_interruptible)
        return self.wait_ready() if wait else self

    def wait_ready(self) -> KbNode:
        """Wait until /healthz answers 200; a node that exits or takes too long raises, with its log."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"node {self.name} exited with {code} while starting:\n{self.log_tail()}")
            try:
                if self.health(timeout=2)[0] == 200:
                    return self
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"node {self.name} did not answer /healthz in {self.start_timeout:.0f} s:\n"
                                   + self.log_tail())
            time.sleep(0.1)

    def health(self, timeout: float = 5) -> tuple[int, dict]:
        """GET /healthz on this node itself: (status, JSON)."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error)

    def kill(self) -> None:
        """SIGKILL by PID, as a machine that dies; wait for it."""
        process, self.process = self.process, None
        stop_process(process, signal.SIGKILL, 30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT by PID (waitress stops, the worker thread is a daemon), SIGKILL if still there."""
        process, self.process = self.process, None
        stop_process(process, signal.SIGINT, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(deque(handle, maxlen=lines))
        except OSError:
            return "(no log)"
