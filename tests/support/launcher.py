"""A fork server for the reliability tests: runs `kb` CLI commands as real, killable processes.

Starting `python -m cli` costs about a second of imports, too slow to kill dozens of ingests. This
server imports kb, the loaders and the encoder's libraries once (it loads no model, opens no
database and starts no threads, so forking is safe), then forks one child per command; the
child calls `cli.main(argv)` exactly as `python -m cli` does. With a trace file, the child
appends a line `<monotonic time> <phase>` as it enters each phase of a write, so a test can kill
it inside a chosen phase and know afterwards where it really died. The tests start it with
OMP_NUM_THREADS=1: several processes share few cores, and encoder threads would only contend.

Protocol, one JSON object per line: {"run": argv, "out": path, "trace": path or null} answers
{"pid": n}; {"wait": pid} answers {"status": exit status, or -signal}; {"quit": true} ends it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import onnxruntime  # noqa: E402,F401  (imported here so that children start fast)
import tokenizers  # noqa: E402,F401

import ingest.pipeline  # noqa: E402
import cli  # noqa: E402
from kb.collection import KnowledgeBase  # noqa: E402
from kb.embed import Embedder  # noqa: E402
from kb.index import VectorIndex  # noqa: E402
from kb.storage import Store  # noqa: E402

_trace_fd: int | None = None


def mark(phase: str) -> None:
    if _trace_fd is not None:
        os.write(_trace_fd, f"{time.monotonic():.6f} {phase}\n".encode())


def _traced(owner, name: str, start: str, end: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        mark(start)
        result = original(*args, **kwargs)
        mark(end)
        return result

    setattr(owner, name, wrapper)


def install_trace() -> None:
    """Phase markers around each step of an ingest or a removal (the product code is untouched)."""
    _traced(ingest.pipeline.IsolatedLoader, "load", "load", "loaded")
    _traced(Embedder, "encode", "embed", "embedded")
    _traced(VectorIndex, "save", "save", "saved")
    _traced(KnowledgeBase, "remove", "remove", "removed")
    transaction = Store.transaction

    @contextmanager
    def traced_transaction(self, *args, **kwargs):
        mark("write")
        with transaction(self, *args, **kwargs) as conn:
            yield conn
            mark("commit")
        mark("committed")

    Store.transaction = traced_transaction


def run_child(request: dict) -> None:
    """In the forked child: redirect output, open the trace, run the CLI, exit with its status."""
    global _trace_fd
    code = 70
    try:
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        if request.get("trace"):
            _trace_fd = os.open(request["trace"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            mark("start")
        code = cli.main(request["run"])
        mark("exit")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    install_trace()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            pid = os.fork()
            if pid == 0:
                run_child(request)
            answer = {"pid": pid}
        elif "wait" in request:
            _, status = os.waitpid(request["wait"], 0)
            answer = {"status": os.waitstatus_to_exitcode(status)}
        else:
            break
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
