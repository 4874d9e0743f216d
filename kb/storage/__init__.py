"""Storage: the one owner of SQL in kb.

`schema.py` declares the tables (SQLAlchemy Core), `database.py` holds the engine, read connections
and write transactions, `filters.py` turns search filters into conditions, and the other modules
hold the queries of one part of kb each: `store.py` documents, chunks, vectors and the keyword index;
`accounts.py`, `jobs.py`, `audit.py` and `themes.py` theirs. Callers get typed rows back.
"""

from .database import Database, now
from .store import EDITABLE, SORTABLE, Store

__all__ = ["Database", "EDITABLE", "SORTABLE", "Store", "now"]
