-- One-time codes sent to a user (email now, SMS later). Only a keyed hash (HMAC-SHA256
-- with a key derived from the master key) of each code is stored. A code is created
-- undelivered (delivered = FALSE) and becomes usable only once its message went out, so
-- a failed send leaves nothing usable behind.
CREATE TABLE one_time_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    delivered BOOLEAN NOT NULL DEFAULT FALSE,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX one_time_codes_user_purpose ON one_time_codes(user_id, purpose);

-- Two-step verification by email codes: a row means it is enabled for the user.
CREATE TABLE email_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- Sign-in and two-step confirmation look users up by address, case-insensitively.
CREATE INDEX users_email_lower ON users (lower(email));
