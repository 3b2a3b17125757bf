-- The vault: data keys, each wrapped (encrypted) by one master key. Credentials are sealed
-- with a data key; rotating the master key re-wraps these rows only.
CREATE TABLE vault_data_keys (
    id             TEXT   PRIMARY KEY,
    master_key_id  TEXT   NOT NULL,
    wrapped_key    BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL
);

-- One row per miner: the default provider, used from the next claim on.
CREATE TABLE miners (
    hotkey            TEXT   PRIMARY KEY,
    default_provider  TEXT,
    updated_at        BIGINT NOT NULL
);

-- A miner's credential at a provider, sealed by the vault. state: connected | needs_reconsent
CREATE TABLE connections (
    hotkey              TEXT   NOT NULL,
    provider            TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    label               TEXT   NOT NULL,
    ciphertext          BYTEA  NOT NULL,
    connected_at        BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    -- A lease that serializes refresh-token rotation across replicas.
    refresh_lock_until  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hotkey, provider)
);

-- Credentials already forgotten by the miner whose revocation at the provider has not
-- succeeded yet (the provider was down); retried until done, then deleted.
CREATE TABLE pending_revocations (
    id           TEXT   PRIMARY KEY,
    hotkey       TEXT   NOT NULL,
    provider     TEXT   NOT NULL,
    ciphertext   BYTEA  NOT NULL,
    reason       TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_try_at  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Per-run OpenRouter keys minted with a miner's management key: disabled, never deleted,
-- so the miner still sees the spend.
CREATE TABLE run_keys (
    key_hash      TEXT   PRIMARY KEY,
    hotkey        TEXT   NOT NULL,
    eval_run_id   TEXT   NOT NULL,
    -- Which management key minted it (a digest), so a disconnect disables only its own keys.
    minted_by     TEXT   NOT NULL,
    cap_usd       DOUBLE PRECISION NOT NULL,
    expires_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    usage_usd     DOUBLE PRECISION,
    created_at    BIGINT NOT NULL
);
CREATE INDEX run_keys_hotkey ON run_keys (hotkey);

-- OAuth authorization requests from the dashboard, single use.
CREATE TABLE oauth_states (
    state_hash          TEXT   PRIMARY KEY,
    hotkey              TEXT   NOT NULL,
    sealed_verifier     BYTEA  NOT NULL,
    redirect_uri        TEXT   NOT NULL,
    expires_at          BIGINT NOT NULL
);

-- What happened to a miner's connections, newest last.
CREATE TABLE audit_events (
    id        TEXT   PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hotkey    TEXT   NOT NULL,
    provider  TEXT,
    kind      TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX audit_events_hotkey ON audit_events (hotkey, seq);

-- The model catalog: one canonical model per row, under both providers' names.
CREATE TABLE catalog_models (
    chutes_name      TEXT   PRIMARY KEY,
    openrouter_name  TEXT   NOT NULL UNIQUE,
    position         BIGINT NOT NULL,
    is_default       BIGINT NOT NULL DEFAULT 0,
    rank_metric      DOUBLE PRECISION,
    healthy          BIGINT NOT NULL DEFAULT 1,
    updated_at       BIGINT NOT NULL
);
