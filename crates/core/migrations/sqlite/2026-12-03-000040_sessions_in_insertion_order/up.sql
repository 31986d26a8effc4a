-- Sessions were a WITHOUT ROWID table keyed by the refresh token's hash, so every new
-- session went to a random leaf of the whole table, and so did its entries in the id
-- and user_id indexes: once the table outgrew the page cache's share of a commit, each
-- login dirtied three pages of its own, and the cost per login grew with the table.
-- Now the rows are appended in rowid order and session ids begin with their creation
-- time (tokens/sessions.rs), so only the refresh-hash and user_id indexes take inserts
-- at random places. PostgreSQL's heap is in insertion order already.
CREATE TABLE sessions_ordered (
    refresh_hash TEXT NOT NULL UNIQUE,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dialect TEXT NOT NULL,
    csrf_hash TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    generation BIGINT NOT NULL DEFAULT 0
);
INSERT INTO sessions_ordered
    (refresh_hash, id, user_id, dialect, csrf_hash, created_at, expires_at, revoked, generation)
    SELECT refresh_hash, id, user_id, dialect, csrf_hash, created_at, expires_at, revoked, generation
    FROM sessions ORDER BY created_at;
DROP TABLE sessions;
ALTER TABLE sessions_ordered RENAME TO sessions;
CREATE INDEX sessions_user_id ON sessions(user_id);
CREATE UNIQUE INDEX sessions_id ON sessions(id);
