-- A miner's optional monthly ceiling on the caps of OpenRouter run keys (NULL: no ceiling).
ALTER TABLE miners ADD COLUMN monthly_budget_usd REAL;

-- Claims put back because the provider was unwell (drives their backoff); `attempts` counts
-- only validators that took the run and vanished.
ALTER TABLE eval_runs ADD COLUMN claim_retries INTEGER NOT NULL DEFAULT 0;

-- A run key that can no longer be retired with the miner's current credential (that
-- credential's own disconnect or replacement disables it); the sweep skips it.
ALTER TABLE run_keys ADD COLUMN orphaned_at INTEGER;
