"""Stored files: the originals of documents and uploads waiting for their job, under relative names
kb makes itself (a content hash, a random id), never names taken from a user.

With SQLite they are files in the data folder; with PostgreSQL they are rows of `files`, so that
any web node can serve a download or run an upload's job.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..errors import NotFound
from . import private
from .database import Database
from .schema import files


class FolderFiles:
    def __init__(self, root: Path):
        self.root = Path(root)

    def local_path(self, name: str) -> Path:
        """The file's path on this machine; NotFound when it is missing or lies outside the folder."""
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            raise NotFound("the stored file is missing")
        return path

    def put(self, name: str, data: bytes) -> None:
        """Write atomically; a name already present is kept (names are content hashes or random)."""
        target = self.root / name
        if target.exists():
            return
        private.make_folder(target.parent)
        tmp = target.with_name(target.name + ".tmp")
        private.write_file(tmp, data)
        os.replace(tmp, target)

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        for name, data in items:
            self.put(name, data)

    def read(self, name: str) -> bytes:
        return self.local_path(name).read_bytes()

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


class DatabaseFiles:
    def __init__(self, db: Database):
        self.db = db

    def local_path(self, name: str) -> None:
        return None  # nothing on this machine's disk: read() it

    def put(self, name: str, data: bytes) -> None:
        self.put_many([(name, data)])

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """A name already present is kept. One statement that cannot conflict with another
        writer's work, so it does not wait for the writer lock."""
        if items:
            with self.db.transaction(bump=None, lock=False) as conn:
                conn.execute(pg_insert(files).on_conflict_do_nothing(),
                             [{"path": name, "data": data, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in dict(items).items()])

    def read(self, name: str) -> bytes:
        with self.db.read() as conn:
            data = conn.execute(select(files.c.data).where(files.c.path == name)).scalar()
        if data is None:
            raise NotFound("the stored file is missing")
        return bytes(data)

    def delete(self, name: str) -> None:
        with self.db.transaction(bump=None) as conn:
            conn.execute(delete(files).where(files.c.path == name))
