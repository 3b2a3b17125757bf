-- Agents and their uploaded versions (Python source, kept for the validator to download).
CREATE TABLE agents (
    id          TEXT   PRIMARY KEY,
    hotkey      TEXT   NOT NULL,
    agent_name  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (hotkey, agent_name)
);

CREATE TABLE agent_versions (
    id          TEXT   PRIMARY KEY,
    agent_id    TEXT   NOT NULL,
    hotkey      TEXT   NOT NULL,
    file_name   TEXT   NOT NULL,
    code        BYTEA  NOT NULL,
    sha256      TEXT   NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX agent_versions_hotkey ON agent_versions (hotkey, created_at);

-- One evaluation of one agent version. status: queued | running | succeeded | failed.
-- provider is pinned at claim time (the miner's default then) and never changes.
CREATE TABLE eval_runs (
    id                TEXT   PRIMARY KEY,
    seq               BIGINT NOT NULL,
    agent_version_id  TEXT   NOT NULL,
    hotkey            TEXT   NOT NULL,
    suite_id          BIGINT NOT NULL,
    status            TEXT   NOT NULL,
    provider          TEXT,
    validator_hotkey  TEXT,
    lease_expires_at  BIGINT,
    claimed_at        BIGINT,
    completed_at      BIGINT,
    failure_reason    TEXT,
    cap_usd           DOUBLE PRECISION,
    key_hash          TEXT,
    token_expires_at  BIGINT,
    spend_usd         DOUBLE PRECISION,
    score             DOUBLE PRECISION,
    progress          TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    not_before        BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX eval_runs_queue ON eval_runs (status, not_before, seq);
CREATE INDEX eval_runs_hotkey ON eval_runs (hotkey, seq);
CREATE INDEX eval_runs_lease ON eval_runs (status, lease_expires_at);
