-- Gatehouse store, PostgreSQL schema 1: documents, the revision counter,
-- the audit log and admin tokens.

CREATE TABLE store_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

CREATE TABLE documents (
    id         UUID   PRIMARY KEY,
    workspace  TEXT   COLLATE "C" NOT NULL,
    kind       TEXT   NOT NULL,
    name       TEXT   COLLATE "C" NOT NULL,  -- byte order, like SQLite
    tags       TEXT[] NOT NULL DEFAULT '{}',
    body       JSONB  NOT NULL,
    version    BIGINT NOT NULL,              -- revision of the last change
    created_at BIGINT NOT NULL,              -- Unix ms
    updated_at BIGINT NOT NULL,
    UNIQUE (workspace, kind, name)
);
CREATE INDEX documents_tags ON documents USING GIN (tags);

CREATE TABLE audit_log (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision  BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    workspace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    before    JSONB,
    after     JSONB
);
CREATE INDEX audit_log_target ON audit_log (workspace, kind, name, seq);

CREATE TABLE admin_tokens (
    id         UUID   PRIMARY KEY,
    name       TEXT   NOT NULL,
    token_hash TEXT   NOT NULL UNIQUE,  -- hex SHA-256 of the token
    role       TEXT   NOT NULL,
    workspace  TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    revoked_at BIGINT
);
