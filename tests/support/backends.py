"""Which backends a test runs on: both by default (the `database_url` fixture in conftest.py)."""

import pytest

# for what only SQLite + FAISS has: the FAISS files, the file lock, SQLite's own migrations
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
