-- A miner's optional monthly ceiling on the caps of OpenRouter run keys (NULL: no ceiling).
ALTER TABLE miners ADD COLUMN monthly_budget_usd DOUBLE PRECISION;
