"""Copy a whole collection from one database to another (SQLite to PostgreSQL and back).

Rows keep their ids, so chunk ids still equal vector ids; vectors come from the embedding cache
(nothing is embedded again); the keyword index is built on the target from the copied chunks;
stored originals and staged uploads go with their documents and jobs.
"""

from __future__ import annotations

from sqlalchemy import func, insert, select, text, update

from ..errors import BadRequest
from .schema import (audit, chunk_themes, chunks, doc_bands, documents, embeddings, feed_tokens, feedback, follows,
                     jobs, judgements, meta, questions, result_opens, search_log, sessions, themes, users)
from . import keyword
from .store import Store

# parents before children; login_failures (a few minutes' throttling) stay behind
TABLES = (documents, chunks, embeddings, doc_bands, users, sessions, audit, jobs, themes, chunk_themes, questions,
          judgements, follows, feed_tokens, search_log, result_opens, feedback, meta)
BATCH = 2000


def is_empty(store: Store) -> bool:
    with store.db.read() as conn:
        return all(conn.execute(select(func.count()).select_from(t)).scalar() == 0
                   for t in (documents, users, audit, jobs))


def copy_rows(source: Store, target: Store, replace: bool = False) -> dict[str, int]:
    """Every row of every table, in one write transaction on the target; counts per table. The
    target's generation moves past the copied one, so no index it kept from before is taken as current."""
    if not is_empty(target) and not replace:
        raise BadRequest("the target already holds a collection; pass --force to replace it")
    counts = {}
    with target.transaction() as out:
        for table in reversed(TABLES):
            out.execute(table.delete())
        if target.dialect == "postgresql":
            out.execute(text("DELETE FROM chunk_search"))
            out.execute(text("DELETE FROM term_stats"))
            out.execute(text("DELETE FROM term_postings"))
            out.execute(text("DELETE FROM chunk_vectors"))
            out.execute(text("DELETE FROM files"))
        else:
            for fts in keyword.READER_INDEXES[:-1]:  # contentless: FTS5 empties them by its own command
                out.execute(text(f"INSERT INTO {fts} ({fts}) VALUES ('delete-all')"))
            out.execute(text(f"DELETE FROM {keyword.READER_INDEXES[-1]}"))
            out.execute(text("DELETE FROM keyword_levels"))
        for table in TABLES:
            counts[table.name] = _copy_table(source, out, table)
        out.execute(meta.delete().where(meta.c.key.in_(keyword.STATS)))  # counted below
        titles = {}
        with source.db.read() as conn:
            titles.update(conn.execute(select(documents.c.id, documents.c.title)).all())
            for part in _batches(conn.execute(select(chunks.c.id, chunks.c.doc_id, chunks.c.text, chunks.c.heading)
                                              .order_by(chunks.c.id))):
                keyword.add(out, [(i, body, titles[doc_id], heading) for i, doc_id, body, heading in part])
        if target.dialect == "postgresql":
            # identities continue after the copied ids
            for table in (documents, chunks, users, audit, jobs, questions, follows, search_log, result_opens, feedback):
                out.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"))
    return counts


def _copy_table(source: Store, out, table) -> int:
    columns = [c for c in table.c]
    copied = 0
    later = []  # documents' near-duplicate links, set once every document is there
    with source.db.read() as conn:
        for part in _batches(conn.execute(select(*columns))):
            rows = [dict(r._mapping) for r in part]
            if table is documents:
                later += [(r["id"], r["dup_of"]) for r in rows if r["dup_of"] is not None]
                for r in rows:
                    r["dup_of"] = None
            out.execute(insert(table), rows)
            copied += len(rows)
    for doc_id, dup_of in later:
        out.execute(update(documents).where(documents.c.id == doc_id).values(dup_of=dup_of))
    return copied


def _batches(result):
    while True:
        part = result.fetchmany(BATCH)
        if not part:
            return
        yield part
