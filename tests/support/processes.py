"""Stopping the test's own server processes by PID."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Send `sig` to a process started here, wait up to `timeout` seconds, then SIGKILL it."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
