"""Loading files in a worker process, so that no file can hang, exhaust or crash an ingest.

One worker (`python -m ingest.isolate`: the loaders only, no model, no database) serves an
ingest run, one file at a time over its stdin and stdout (a JSON header, the file's bytes, a
JSON answer). The parent waits at most the time limit for an answer, then kills the worker and
starts a fresh one for the next file. Before each page it reads by OCR the worker says so (a
`{"more": seconds}` line), which moves the deadline on by that page's own limit. The worker caps its own address space and CPU time, so a
decompression bomb ends in a clear refusal and a worker orphaned by a killed ingest cannot run on.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import select
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kb.errors import LoadError, MissingDependency
from kb.models import Attachment, Block, LoadedDocument

from .ocr import OcrOptions

MEMORY_LIMIT = 4 * 1024 ** 3  # the worker's address space, in bytes
GRACE_SECONDS = 1.0  # lets a loader's own time check (which names the page) answer first


class IsolatedLoader:
    """`load` behind a process boundary; use as a context manager around an ingest run."""

    def __init__(self, max_pdf_pages: int = 2000, max_seconds: float = 60.0, max_memory: int = MEMORY_LIMIT,
                 ocr: OcrOptions = OcrOptions()):
        self.max_pdf_pages, self.max_seconds, self.max_memory = max_pdf_pages, max_seconds, max_memory
        self.ocr = ocr
        self._worker: subprocess.Popen | None = None

    @classmethod
    def for_settings(cls, settings) -> "IsolatedLoader":
        return cls(settings.max_pdf_pages, settings.max_load_seconds, ocr=OcrOptions.from_settings(settings))

    def __enter__(self) -> "IsolatedLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, data: bytes, name: str) -> LoadedDocument:
        """The loaded document, or `LoadError` for a bad file, a hang, a memory bomb or a crash."""
        worker = self._start()
        header = {"name": name, "size": len(data), "max_pdf_pages": self.max_pdf_pages,
                  "max_seconds": self.max_seconds, "ocr": self.ocr.wire()}
        try:
            worker.stdin.write(json.dumps(header).encode() + b"\n" + data)
            worker.stdin.flush()
            answer = _read_answer(worker.stdout, time.monotonic() + self.max_seconds + GRACE_SECONDS)
        except TimeoutError as exc:
            self._stop()
            if exc.args:  # stopped while reading a page by OCR
                raise LoadError(f"OCR of a page took longer than the limit of {exc.args[0]:g} s: stopped") from None
            raise LoadError(f"reading took longer than the limit of {self.max_seconds:g} s: stopped") from None
        except (OSError, EOFError):
            code = self._stop()
            raise LoadError(f"the loader crashed on this file (exit status {code})") from None
        if "error" in answer:
            raise LoadError(answer["error"])
        return from_json(answer["document"])

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._stop()
            self._worker = None

    def _start(self) -> subprocess.Popen:
        if self._worker is None or self._worker.poll() is not None:
            root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "ingest.isolate", str(self.max_memory)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        return self._worker

    def _stop(self) -> int | None:
        worker, self._worker = self._worker, None
        if worker is None:
            return None
        worker.kill()
        worker.wait()
        for stream in (worker.stdin, worker.stdout):
            try:
                stream.close()
            except OSError:
                pass
        return worker.returncode


def _read_answer(stream, deadline: float) -> dict:
    """The worker's answer (a JSON line), waiting no later than `deadline`, which each OCR page it
    announces (`{"more": seconds}`) moves on to that long from then. TimeoutError carries the page
    limit when the deadline was a page's."""
    parts: list[bytes] = []
    fd = stream.fileno()
    page_limit = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(*([page_limit] if page_limit is not None else []))
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        if not chunk.endswith(b"\n"):
            continue
        *lines, last = b"".join(parts).rstrip(b"\n").split(b"\n")
        parts.clear()
        for line in (*lines, last):
            message = json.loads(line)
            if "more" not in message:
                return message
            page_limit = float(message["more"])
            deadline = time.monotonic() + page_limit + GRACE_SECONDS


def serve(max_memory: int) -> None:
    """The worker: read requests from stdin until it closes, answer each on stdout."""
    from . import load

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = source.readline()
        if not line:
            return
        request = json.loads(line)
        data = source.read(request["size"])
        _limit_cpu(request["max_seconds"] + GRACE_SECONDS + 1)
        ocr = OcrOptions(**request["ocr"], on_page=lambda seconds: _announce(sink, seconds))
        try:
            doc = load(data, request["name"], request["max_pdf_pages"], request["max_seconds"], ocr)
            answer = {"document": to_json(doc)}
        except LoadError as exc:
            answer = {"error": str(exc)}
        except ImportError as exc:  # kb's own installation, not the file
            answer = {"error": str(MissingDependency(f"{exc.name or exc} is not installed"))}
        except MemoryError:
            answer = {"error": f"needs more than {max_memory // 1024 ** 2} MB of memory to read: refused"}
        except RecursionError:
            answer = {"error": "nested too deeply to read"}
        except Exception as exc:  # a loader bug must not cost the other files
            answer = {"error": f"unexpected error: {type(exc).__name__}: {exc}"[:300]}
        sink.write(json.dumps(answer).encode() + b"\n")
        sink.flush()


def _announce(sink, seconds: float) -> None:
    """Tell the parent a page is about to be read by OCR within `seconds`, and allow this process
    that much more CPU time (Tesseract's own runs in its own process)."""
    _limit_cpu(seconds + GRACE_SECONDS + 1)
    sink.write(json.dumps({"more": seconds}).encode() + b"\n")
    sink.flush()


def to_json(doc: LoadedDocument) -> dict:
    """A loaded document as JSON: blocks as lists, attachments' bytes in base64."""
    return {**asdict(doc), "blocks": [list(asdict(b).values()) for b in doc.blocks],
            "attachments": [[a.name, base64.b64encode(a.data).decode("ascii")] for a in doc.attachments]}


def from_json(doc: dict) -> LoadedDocument:
    return LoadedDocument(**{**doc, "blocks": [Block(*b) for b in doc["blocks"]],
                             "attachments": [Attachment(n, base64.b64decode(d)) for n, d in doc.get("attachments", [])]})


def _limit_cpu(seconds: float) -> None:
    """Let this process use `seconds` more CPU time; past it the kernel ends it (SIGXCPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
