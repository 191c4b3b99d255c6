-- Marker of the demo / scale data sets written by `akig seed` (server/seed/): a second run
-- finds its row and changes nothing. Holds no timestamp so that two seeded databases are
-- identical row for row.
CREATE TABLE seed_runs (
    name        text PRIMARY KEY,            -- 'demo' or 'scale'
    params      jsonb NOT NULL,              -- e.g. {"tenants": 100000, "today": "2026-11-26"}
    report      jsonb NOT NULL,              -- the SeedReport of the run
    CONSTRAINT seed_runs_name_known CHECK (name IN ('demo', 'scale'))
);
