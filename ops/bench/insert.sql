-- pgbench baseline: one single-row INSERT per transaction (bench_inserts is created by
-- ops/bench.sh).
\set amount random(1, 20) * 25000
BEGIN;
INSERT INTO bench_inserts (tenant_id, agent_id, amount_gnf, occurred_at, notes)
VALUES (gen_random_uuid(), gen_random_uuid(), :amount, now(), 'bench');
COMMIT;
