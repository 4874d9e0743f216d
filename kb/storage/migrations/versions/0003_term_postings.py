"""PostgreSQL: keyword search that reads impact-ordered postings instead of scoring every chunk
that holds a query word, and scores from per-chunk arrays instead of unnesting tsvectors.

`chunk_search` gains each chunk's lexemes (sorted) and their weighted term frequencies (text 1.0,
headings 0.8, title 0.6), which `kb_score` reads to compute BM25 as FTS5 does (k1 1.2, b 0.75);
it replaces `kb_bm25` (0002), which unnested the tsvector of every row it scored.
`term_postings` holds one row per (lexeme, chunk) with the lexeme's BM25 term-frequency part (its
"impact", without the IDF) computed against a reference average length (`meta`:
keyword_ref_avgdl), in a B-tree ordered by lexeme and impact; see keyword.search_postgres.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE chunk_search ADD COLUMN lexemes text[] NOT NULL DEFAULT '{}', "
               "ADD COLUMN tfs real[] NOT NULL DEFAULT '{}'")
    # a lexeme's weighted term frequency in a chunk, from its weights in the tsvector
    op.execute("""
        CREATE FUNCTION kb_tf(weights text[]) RETURNS real LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(sum(CASE w WHEN 'A' THEN 1.0 WHEN 'B' THEN 0.8 WHEN 'C' THEN 0.6 ELSE 0 END), 0)::real
            FROM unnest(weights) AS w
        $$""")
    op.execute("""
        UPDATE chunk_search s SET lexemes = x.lexemes, tfs = x.tfs FROM (
            SELECT chunk_id, array_agg(u.lexeme ORDER BY u.lexeme) AS lexemes,
                   array_agg(kb_tf(u.weights) ORDER BY u.lexeme) AS tfs
            FROM chunk_search, unnest(terms) AS u GROUP BY chunk_id) AS x
        WHERE x.chunk_id = s.chunk_id""")
    op.execute("DROP FUNCTION kb_bm25(tsvector, integer, text[], float8[], float8)")
    # a chunk's BM25 score for query lexemes with their IDFs, as FTS5's bm25() computes it
    op.execute("""
        CREATE FUNCTION kb_score(lexemes text[], tfs real[], length integer, query text[], idf float8[],
                                 avgdl float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
            total float8 := 0;
            k float8 := 1.2 * (0.25 + 0.75 * length / avgdl);
            at integer;
        BEGIN
            FOR n IN 1 .. coalesce(array_length(query, 1), 0) LOOP
                at := array_position(lexemes, query[n]);
                IF at IS NOT NULL THEN
                    total := total + idf[n] * tfs[at] * 2.2 / (tfs[at] + k);
                END IF;
            END LOOP;
            RETURN total;
        END $$""")
    # BM25's term-frequency part, without the IDF: what kb_score adds up, times each IDF
    op.execute("""
        CREATE FUNCTION kb_impact(tf real, length integer, avgdl float8) RETURNS real
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT (tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avgdl)))::real
        $$""")
    op.execute("CREATE TABLE term_postings (term text NOT NULL, impact real NOT NULL, chunk_id integer NOT NULL, "
               "PRIMARY KEY (term, impact, chunk_id))")
    op.execute("""
        INSERT INTO meta (key, value)
        SELECT 'keyword_ref_avgdl', greatest(coalesce(avg(length), 1), 1)::text FROM chunk_search""")
    op.execute("""
        INSERT INTO term_postings (term, impact, chunk_id)
        SELECT u.term, kb_impact(u.tf, s.length, r.avgdl), s.chunk_id
        FROM chunk_search s, unnest(s.lexemes, s.tfs) AS u(term, tf),
             (SELECT CAST(value AS float8) AS avgdl FROM meta WHERE key = 'keyword_ref_avgdl') AS r""")
