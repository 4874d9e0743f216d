"""Storage: the one owner of SQL in kb.

`schema.py` declares the tables (SQLAlchemy Core), `database.py` holds the engine, read connections
and write transactions, `filters.py` turns search filters into conditions, and the other modules
hold the queries of one part of kb each: `store.py` documents, chunks and the embedding cache;
`keyword.py` the keyword index (FTS5, or a tsvector with BM25 in SQL); `vectors.py` pgvector;
`files.py` stored originals (`private.py` keeps them and the database file to their owner); `copy.py` moving a collection between databases;
`accounts.py`, `jobs.py`, `audit.py`, `themes.py` and `questions.py` (learning questions and their
judgements) theirs. Callers get typed rows back.
"""

from .database import Database, now
from .store import EDITABLE, SORTABLE, Store

__all__ = ["Database", "EDITABLE", "SORTABLE", "Store", "now"]
