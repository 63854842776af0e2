-- Gatehouse store, SQLite schema 1: documents, the revision counter, the
-- audit log and admin tokens.

CREATE TABLE store_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

CREATE TABLE documents (
    id         TEXT    PRIMARY KEY,
    workspace  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    tags       TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    body       TEXT    NOT NULL,               -- JSON object
    version    INTEGER NOT NULL,               -- revision of the last change
    created_at INTEGER NOT NULL,               -- Unix ms
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace, kind, name)
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    revision  INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    workspace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    before    TEXT,
    after     TEXT
);
CREATE INDEX audit_log_target ON audit_log (workspace, kind, name, seq);

CREATE TABLE admin_tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,  -- hex SHA-256 of the token
    role       TEXT    NOT NULL,
    workspace  TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    revoked_at INTEGER
);
