"""The background worker: runs upload and re-embedding jobs one at a time, off the request path."""

from __future__ import annotations

import logging
import threading
import time

from ingest.upload import run_upload
from kb.collection import KnowledgeBase
from kb.errors import Busy, DatabaseUnavailable
from kb.jobs import Job, Jobs

log = logging.getLogger(__name__)
BEAT_SECONDS = 10.0  # well inside kb.jobs.LEASE_SECONDS


class Worker:
    def __init__(self, kb: KnowledgeBase, jobs: Jobs):
        self.kb, self.jobs = kb, jobs
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.jobs.requeue_orphans()  # a restart picks up what this machine's stopped server left
        self._thread = threading.Thread(target=self._loop, name="kb-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking jobs and wait (up to `timeout` seconds) for the one running to end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def notify(self) -> None:
        self._wake.set()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once no job is queued or running (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy and not self.jobs.active():
                return True
            time.sleep(0.05)
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._busy = True  # before the claim, so that wait_idle never sees a claimed job as idle
            try:
                self.jobs.requeue_stale()  # jobs of a worker that stopped beating (crashed, machine gone)
                job = self.jobs.claim_next()
            except Exception as exc:  # the database is down, failing over, or busy: the worker waits it out
                log.warning("cannot take jobs just now: %s", exc)
                job = None
            if job is None:
                self._busy = False
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            beating = threading.Event()
            beat = threading.Thread(target=self._beat, args=(job.id, beating), name="kb-worker-beat", daemon=True)
            beat.start()
            try:
                self.run(job)
            except (Busy, DatabaseUnavailable) as exc:  # it passes: the job waits in the queue, not failed
                log.warning("job %s back to the queue: %s", job.id, exc)
                self._settle(job.id, requeue=True)
            except Exception as exc:  # a job must never take the worker down
                log.exception("job %s failed", job.id)
                self._settle(job.id, message=f"unexpected error: {exc}"[:300])
            finally:
                beating.set()
                beat.join()
                self._busy = False

    def _settle(self, job_id: int, requeue: bool = False, message: str = "") -> None:
        """Requeue or fail a job that raised; if the database cannot take even that, its lease
        runs out and any worker takes it again (kb.jobs.LEASE_SECONDS)."""
        try:
            if requeue:
                self.jobs.requeue(job_id)
            else:
                self.jobs.update(job_id, status="failed", progress=100, message=message)
        except Exception as exc:
            log.warning("job %s left to its lease: %s", job_id, exc)
            if not self._stop.is_set():
                self._wake.wait(1.0)  # not straight back at a database that is down

    def _beat(self, job_id: int, done: threading.Event) -> None:
        """Tell other workers that this job is still held, until it ends."""
        while not done.wait(BEAT_SECONDS):
            try:
                self.jobs.heartbeat(job_id)
            except Exception:  # a missed beat is retried; the job itself decides the outcome
                log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    def run(self, job: Job) -> None:
        if job.kind == "reembed":
            total = max(1, self.kb.store.count("chunks"))
            done = [0]
            self.jobs.update(job.id, status="running", progress=1, message="re-embedding")

            def progress(n: int) -> None:
                done[0] += n
                self.jobs.update(job.id, progress=min(99, 100 * done[0] // total),
                                 message=f"{done[0]} of {total} passages embedded")

            count = self.kb.reindex(progress)
            self.jobs.update(job.id, status="done", progress=100, message=f"index rebuilt: {count} vectors")
        else:
            run_upload(self.kb, self.jobs, job, decision=job.meta.get("_decision"))
