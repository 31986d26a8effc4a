-- Times are unix seconds (BIGINT) so that SQLite and PostgreSQL share one schema.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    email_confirmed BOOLEAN NOT NULL DEFAULT FALSE,
    phone TEXT,
    phone_confirmed BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- One TOTP factor per user: pending (active = FALSE) until a code confirms it.
-- The secret is AES-256-GCM ciphertext (nonce || ciphertext || tag).
CREATE TABLE totp_factors (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed BLOB NOT NULL,
    active BOOLEAN NOT NULL DEFAULT FALSE,
    last_step BIGINT NOT NULL DEFAULT -1,
    created_at BIGINT NOT NULL,
    activated_at BIGINT
);

-- Challenge ids are bearer credentials: only their SHA-256 is stored.
CREATE TABLE challenges (
    id_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    factor_id TEXT NOT NULL REFERENCES totp_factors(id) ON DELETE CASCADE,
    dialect TEXT NOT NULL,
    service TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX challenges_user_id ON challenges(user_id);
CREATE INDEX challenges_factor_id ON challenges(factor_id);

-- Brute-force counters, shared by every instance that uses this database.
CREATE TABLE throttles (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    lockouts INTEGER NOT NULL,
    locked_until BIGINT NOT NULL
);

-- Keyed by the refresh token's hash: the only way a session is looked up.
CREATE TABLE sessions (
    refresh_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dialect TEXT NOT NULL,
    csrf_hash TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
) WITHOUT ROWID;
CREATE INDEX sessions_user_id ON sessions(user_id);
-- Access tokens name their session (`sid`) for dialects that check it is still live.
CREATE UNIQUE INDEX sessions_id ON sessions(id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    username TEXT,
    dialect TEXT NOT NULL,
    ip TEXT,
    detail TEXT
);
