CREATE TABLE sessions_by_hash (
    refresh_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dialect TEXT NOT NULL,
    csrf_hash TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    generation BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO sessions_by_hash SELECT
    refresh_hash, id, user_id, dialect, csrf_hash, created_at, expires_at, revoked, generation
    FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_by_hash RENAME TO sessions;
CREATE INDEX sessions_user_id ON sessions(user_id);
CREATE UNIQUE INDEX sessions_id ON sessions(id);
