"""PostgreSQL: BM25 for keyword search, as SQLite's FTS5 ranks, instead of ts_rank_cd.

Each chunk's token count (`chunk_search.length`), every lexeme's document frequency (`term_stats`)
and the collection's totals (`meta`: keyword_chunks, keyword_length) are kept as chunks come and go.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE chunk_search ADD COLUMN length integer NOT NULL DEFAULT 0")
    op.execute("CREATE TABLE term_stats (term text PRIMARY KEY, df integer NOT NULL)")
    op.execute("""
        INSERT INTO term_stats (term, df)
        SELECT lexeme, count(*) FROM chunk_search, unnest(tsvector_to_array(terms)) AS lexeme GROUP BY lexeme""")
    op.execute("""
        UPDATE chunk_search s SET length = coalesce((
            SELECT max(p) FROM unnest(s.terms) AS u, unnest(u.positions) AS p), 0)""")
    # a chunk's BM25 score for query lexemes with their IDFs, as FTS5's bm25() computes it (k1 1.2,
    # b 0.75) with column weights text 1.0 (A), headings 0.8 (B), title 0.6 (C)
    op.execute("""
        CREATE FUNCTION kb_bm25(terms tsvector, length integer, lexemes text[], idf float8[], avgdl float8)
        RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(sum(q.idf * t.tf * 2.2 / (t.tf + 1.2 * (0.25 + 0.75 * length / avgdl))), 0)
            FROM unnest(lexemes, idf) AS q(lexeme, idf)
            JOIN (SELECT u.lexeme,
                         (SELECT sum(CASE w WHEN 'A' THEN 1.0 WHEN 'B' THEN 0.8 WHEN 'C' THEN 0.6 ELSE 0 END)
                          FROM unnest(u.weights) AS w) AS tf
                  FROM unnest(terms) AS u) AS t ON t.lexeme = q.lexeme
        $$""")
    op.execute("""
        INSERT INTO meta (key, value)
        SELECT 'keyword_chunks', count(*)::text FROM chunk_search
        UNION ALL SELECT 'keyword_length', coalesce(sum(length), 0)::text FROM chunk_search""")
