-- Saasu files: the numeric file ids a user may reach (the `fileid:<n>` scopes).
CREATE TABLE user_files (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, file_id)
);
CREATE INDEX user_files_file_id ON user_files(file_id);

-- Legacy Saasu web-service access keys: only the SHA-256 of each key is stored; a key
-- acts as its user on one file.
CREATE TABLE ws_keys (
    hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ws_keys_user_id ON ws_keys(user_id);

-- The SMS factor: one row per user, pending (active = FALSE) from opt-in until the
-- texted code is verified. `provider_user_id` is the opaque id the opt-in answered
-- (Saasu's ProviderUserId); the phone is E.164. An active number serves one user only.
CREATE TABLE sms_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    provider_user_id BIGINT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    activated_at BIGINT
);
CREATE UNIQUE INDEX sms_factors_active_phone ON sms_factors(phone) WHERE active;
CREATE UNIQUE INDEX sms_factors_provider_user_id ON sms_factors(provider_user_id);

-- Access tokens carry their session's generation; a refresh increments it, so the
-- previous access token stops working while the refresh token stays the same.
ALTER TABLE sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
