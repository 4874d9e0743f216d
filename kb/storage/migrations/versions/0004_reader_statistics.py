"""Keyword statistics per reader level, so that a reader's BM25 scores count only what they may see.

A chunk's keyword level is the least reader that may see it: 0 an active public document's, 1 an
active partners-only one's, 2 any other (curators-only or retired). SQLite gains contentless FTS5
indexes for the first two readers (`chunks_fts_public`: level 0; `chunks_fts_partners`: levels
0-1; `chunks_fts` stays every chunk's, the curators') and `keyword_levels`. PostgreSQL gains
`chunk_search.level`, document frequencies per level (`term_stats` keyed by term and level) and
totals per level (`meta`: keyword_chunks_N, keyword_length_N).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LEVEL = ("CASE WHEN d.status <> 'active' THEN 2 WHEN d.visibility = 'public' THEN 0 "
         "WHEN d.visibility = 'partners' THEN 1 ELSE 2 END")  # as kb.storage.keyword.LEVEL, frozen here


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TABLE keyword_levels (chunk_id INTEGER PRIMARY KEY, level INTEGER NOT NULL)")
        op.execute(f"INSERT INTO keyword_levels (chunk_id, level) SELECT c.id, {LEVEL} FROM chunks c "
                   "JOIN documents d ON d.id = c.doc_id")
        for level, fts in enumerate(("chunks_fts_public", "chunks_fts_partners")):
            op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5(text, title, heading, content = '', "
                       "tokenize = 'porter unicode61 remove_diacritics 2')")
            op.execute(f"INSERT INTO {fts} (rowid, text, title, heading) SELECT f.rowid, f.text, f.title, f.heading "
                       f"FROM keyword_levels l CROSS JOIN chunks_fts f ON f.rowid = l.chunk_id WHERE l.level <= {level}")
        return
    op.execute("ALTER TABLE chunk_search ADD COLUMN level smallint NOT NULL DEFAULT 2")
    op.execute(f"UPDATE chunk_search s SET level = {LEVEL} FROM chunks c JOIN documents d ON d.id = c.doc_id "
               "WHERE c.id = s.chunk_id")
    op.execute("ALTER TABLE chunk_search ALTER COLUMN level DROP DEFAULT")
    op.execute("DROP TABLE term_stats")
    op.execute("CREATE TABLE term_stats (term text NOT NULL, level smallint NOT NULL, df integer NOT NULL, "
               "PRIMARY KEY (term, level))")
    op.execute("INSERT INTO term_stats (term, level, df) SELECT lexeme, level, count(*) FROM chunk_search, "
               "unnest(tsvector_to_array(terms)) AS lexeme GROUP BY lexeme, level")
    op.execute("DELETE FROM meta WHERE key IN ('keyword_chunks', 'keyword_length')")
    op.execute("""
        INSERT INTO meta (key, value)
        SELECT 'keyword_' || c.k || '_' || n, c.v::text FROM generate_series(0, 2) AS n,
        LATERAL (SELECT count(*) AS chunks, coalesce(sum(length), 0) AS length FROM chunk_search WHERE level = n) AS x,
        LATERAL (VALUES ('chunks', x.chunks), ('length', x.length)) AS c(k, v)""")
