-- Fixed-window counters for rate limits, shared by every replica: one row per bucket
-- ("connect:ip:203.0.113.0" / "connect:hotkey:5F...") and window; housekeeping drops
-- windows that have ended.
CREATE TABLE rate_limit_hits (
    bucket TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_hits_expires ON rate_limit_hits (expires_at);
