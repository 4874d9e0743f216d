"""Schema changes as numbered migrations, applied in order and recorded in `PRAGMA user_version`."""

from __future__ import annotations

import sqlite3

EDITABLE_FIELDS = ("title", "doc_type", "site", "partnership", "published", "tags", "visibility",
                   "source_publication", "original_title")

MIGRATIONS: list[str] = [
    # 1: documents, chunks, embedding cache, full-text index, bookkeeping
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        doc_type TEXT,
        site TEXT,
        partnership TEXT,
        published TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'partners', 'curators')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
        added_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        original_name TEXT,
        mime TEXT,
        stored_path TEXT,
        source_publication TEXT,
        original_title TEXT,
        body TEXT NOT NULL DEFAULT '',
        signature BLOB,
        dup_of INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        dup_score REAL
    );
    CREATE INDEX documents_sha ON documents(sha256);
    CREATE INDEX documents_site ON documents(site);
    CREATE INDEX documents_type ON documents(doc_type);
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        heading TEXT NOT NULL DEFAULT '',
        page INTEGER,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        text_hash TEXT NOT NULL,
        UNIQUE (doc_id, ordinal)
    );
    CREATE INDEX chunks_hash ON chunks(text_hash);
    CREATE TABLE embeddings (
        model TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, title, heading, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE doc_bands (
        band TEXT NOT NULL,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        PRIMARY KEY (band, doc_id)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', '0');
    """,
    # 2: accounts, sign-in throttling, audit log, upload jobs
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('curator', 'partner')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE login_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_at REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL DEFAULT 'upload',
        created_by TEXT NOT NULL,
        original_name TEXT NOT NULL DEFAULT '',
        upload_path TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        doc_id INTEGER,
        duplicate_of INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX jobs_status ON jobs(status);
    INSERT INTO meta (key, value) VALUES ('revision', '0');
    """,
    # 3: themes across the collection
    """
    CREATE TABLE themes (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL,
        terms TEXT NOT NULL,
        public_label TEXT NOT NULL,
        public_terms TEXT NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE TABLE chunk_themes (
        chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        theme_id INTEGER NOT NULL REFERENCES themes(id) ON DELETE CASCADE,
        score REAL NOT NULL
    );
    CREATE INDEX chunk_themes_theme ON chunk_themes(theme_id);
    INSERT INTO meta (key, value) VALUES ('themes_generation', '-1');
    """,
    # 4: theme labels are computed per reader from the passages they may see, not stored per level
    """
    ALTER TABLE themes DROP COLUMN public_label;
    ALTER TABLE themes DROP COLUMN public_terms;
    INSERT OR IGNORE INTO meta (key, value) VALUES ('themes_built', '0');
    """,
    # 5: which metadata fields a curator has edited (a re-ingest leaves those alone), filled from
    # the audit log's edits; and the hash of the file at `source` when it was last read from there
    # (an upload that replaced the content leaves it, so the unchanged file does not undo the upload)
    """
    ALTER TABLE documents ADD COLUMN edited TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE documents ADD COLUMN source_sha TEXT;
    UPDATE documents SET source_sha = sha256 WHERE source NOT LIKE 'upload:%';
    CREATE INDEX documents_source_sha ON documents(source_sha);
    CREATE INDEX doc_bands_doc ON doc_bands(doc_id);
    CREATE INDEX embeddings_hash ON embeddings(text_hash);  -- forgetting a text's vectors, every model's
    CREATE INDEX documents_stored_path ON documents(stored_path);
    """ + "".join(f"""
    UPDATE documents SET edited = json_insert(edited, '$[#]', '{key}') WHERE id IN (
        SELECT CAST(substr(target, 10) AS INTEGER) FROM audit WHERE action = 'edit' AND target LIKE 'document %'
        AND (detail LIKE '{key}=%' OR detail LIKE '%, {key}=%'));""" for key in EDITABLE_FIELDS),
    # 6: which server process runs a job (host:pid), so that only one claims it; sign-in sessions
    # held on the server, so that signing out ends a session everywhere its cookie went
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
