-- The run gateway: what each gateway run token has spent and holds reserved for requests in
-- flight (spent + reserved never passes cap_usd), and each model's price, which turns an
-- answer's token counts into dollars. Prices are USD per million tokens; the defaults are
-- Chutes' list price for the seeded models, and an operator sets others with `server catalog`.
ALTER TABLE run_keys ADD COLUMN spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE run_keys ADD COLUMN reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE catalog_models ADD COLUMN input_usd_per_mtok DOUBLE PRECISION NOT NULL DEFAULT 0.3;
ALTER TABLE catalog_models ADD COLUMN output_usd_per_mtok DOUBLE PRECISION NOT NULL DEFAULT 1.2;
