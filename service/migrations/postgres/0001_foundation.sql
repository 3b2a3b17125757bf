-- Auth: signed-request nonces (shared by every replica), challenges, API sessions,
-- browser sessions, and the hotkeys an operator has given a role.
CREATE TABLE used_nonces (
    hotkey      TEXT   NOT NULL,
    nonce       TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (hotkey, nonce)
);
CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);

CREATE TABLE auth_challenges (
    challenge   TEXT   PRIMARY KEY,
    hotkey      TEXT   NOT NULL,
    purpose     TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE api_sessions (
    token_hash  TEXT   PRIMARY KEY,
    hotkey      TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE web_sessions (
    id          TEXT   PRIMARY KEY,
    data        BYTEA  NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- role: 'validator' | 'banned' | 'miner' (an allowlisted miner, when the allowlist is on)
CREATE TABLE hotkey_roles (
    hotkey      TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    note        TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (hotkey, role)
);

-- Key-value settings an operator changes at run time (e.g. the miner allowlist switch).
CREATE TABLE operator_settings (
    name        TEXT   PRIMARY KEY,
    value       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
