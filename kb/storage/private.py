"""Files and folders that only their owner may read.

The data folder holds password hashes, the session key and documents that not every reader may
see, so what kb makes there is 0700 (folders) and 0600 (files), whatever the umask would allow.
What kb did not make is left as it is, but for kb's own files in its data folder (`restrict`).
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_folder(path: Path) -> None:
    """Create `path` and its missing parents, each 0700; a folder already there keeps its mode."""
    missing = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            pass  # another process made it first


def write_file(path: Path, data: bytes) -> None:
    """Write a new file (or replace a leftover one) that only its owner may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, FILE_MODE)  # a leftover file keeps its old mode through O_CREAT
        fh.write(data)


def create_empty(path: Path) -> None:
    """An empty 0600 file, unless one is there already (SQLite reads an empty file as a new
    database, and gives its -wal and -shm files the database file's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def restrict(path: Path, mode: int) -> None:
    """Take group and world access away from one of kb's own files or folders, made by an older
    kb: when it is there, is this user's, and is open to others."""
    try:
        st = os.stat(path)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass  # missing, or not ours to change: left as it is
