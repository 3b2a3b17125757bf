-- A claim counts the runs its validator holds (the per-validator cap, inside the reservation
-- statement) and heartbeats find them: without this index that count scans every run.
CREATE INDEX eval_runs_validator ON eval_runs (validator_hotkey, status);
