-- OpenRouter runs through the run gateway (ORO_GATEWAY_OPENROUTER=1): the gateway token's row
-- names the per-run OpenRouter key it forwards with (upstream_key_hash, that key's own row)
-- and holds the key sealed by the vault, since the gateway must present it on every request.
-- A run whose provider refused payment through the gateway (402) is marked, and fails with that
-- reason when its validator reports.
ALTER TABLE run_keys ADD COLUMN upstream_key_hash TEXT;
ALTER TABLE run_keys ADD COLUMN upstream_sealed BLOB;
ALTER TABLE eval_runs ADD COLUMN provider_refusal TEXT;
CREATE INDEX run_keys_upstream ON run_keys (upstream_key_hash);
