-- Server-wide settings shared by every instance (e.g. ZStack's twofa.enable).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Results of asynchronous API calls, polled by job id. The id is a bearer credential
-- (only its SHA-256 is stored) and the result may hold a secret, so it is sealed
-- (AES-256-GCM, nonce || ciphertext || tag).
CREATE TABLE api_jobs (
    id_hash TEXT PRIMARY KEY NOT NULL,
    dialect TEXT NOT NULL,
    result_sealed BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
