-- pgbench model of the statements one RecordPayment runs (an agent's cash payment of
-- 400,000 GNF, as akig-bench sends), in order and with the server's SQL text: BEGIN, the
-- idempotency key claim, the tenant lock, the pending promise with the open charges, the
-- payment INSERT (receipt number, credit, score event and daily figures in it), one
-- allocation statement when an open charge is left (the oldest one, as the server's FIFO
-- takes it; \if skips it otherwise, as the server does), the key completion with the audit
-- row, COMMIT. The caller's standing is served from the shared cache (ADR 0009), so no
-- statement of its own. Not modelled: the rare promise settlement of a tenant with a pending
-- promise (extra statements on the server's side, none here). Run by ops/bench.sh; keep it in
-- step with server/idempotency.rs, server/store/{tenants,payments,charges,audit}.rs.
-- bench_pairs (n, agent_id, tenant_id) is created by ops/bench.sh.
\set n random(1, :pairs)
\set key random(1, 9000000000000000000)
BEGIN;
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(:key) AS locked
    FROM set_config('idle_in_transaction_session_timeout', '60000ms', true)),
claimed AS (
    INSERT INTO idempotency_keys
      (actor_id, method, request_id, fingerprint, state, created_at, expires_at)
    SELECT (SELECT agent_id FROM bench_pairs WHERE n = :n),
           '/akig.v1.CollectionsService/RecordPayment', md5(:key::text)::uuid,
           sha256(:key::text::bytea), 'in_flight', now(), now() + interval '30 days'
    FROM lock WHERE locked
    ON CONFLICT (actor_id, method, request_id) DO NOTHING
    RETURNING 1)
SELECT lock.locked, EXISTS (SELECT 1 FROM claimed) AS inserted,
       k.fingerprint, k.state, k.response_body,
       k.expires_at <= now() AS expired,
       k.created_at <= now() - interval '60 seconds' AS stale
FROM lock LEFT JOIN idempotency_keys k
  ON k.actor_id = (SELECT agent_id FROM bench_pairs WHERE n = :n)
 AND k.method = '/akig.v1.CollectionsService/RecordPayment' AND k.request_id = md5(:key::text)::uuid;
SELECT t.id, t.site_id, t.active, t.credit_gnf, t.home_latitude, t.home_longitude,
       t.full_name, t.unit, s.name AS site_name
FROM tenants t JOIN sites s ON s.id = t.site_id
WHERE t.id = (SELECT tenant_id FROM bench_pairs WHERE n = :n) FOR NO KEY UPDATE OF t;
SELECT pp.id AS promise_id,
       oc.charge_ids[1] AS charge_id,
       coalesce(oc.charge_due_gnf[1] - oc.charge_paid_gnf[1], 0) AS outstanding,
       (cardinality(oc.charge_ids) > 0)::int AS has_charge
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT p.id, p.tenant_id, p.status, p.amount_gnf,
           p.promised_date, p.covered_gnf, coalesce(i.occurred_at, p.created_at) AS made_at
    FROM promises p LEFT JOIN interactions i ON i.id = p.interaction_id
    WHERE true AND p.tenant_id = (SELECT tenant_id FROM bench_pairs WHERE n = :n)
      AND p.status = 'pending'
    ORDER BY p.created_at DESC, p.id DESC LIMIT 1 FOR UPDATE OF p) pp ON true
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(c.id ORDER BY c.period, c.id), '{}') AS charge_ids,
           coalesce(array_agg(c.period ORDER BY c.period, c.id), '{}') AS charge_periods,
           coalesce(array_agg(c.due_date ORDER BY c.period, c.id), '{}') AS charge_due_dates,
           coalesce(array_agg(c.amount_due_gnf ORDER BY c.period, c.id), '{}') AS charge_due_gnf,
           coalesce(array_agg(c.amount_paid_gnf ORDER BY c.period, c.id), '{}') AS charge_paid_gnf
    FROM (SELECT id, period, due_date, amount_due_gnf, amount_paid_gnf
          FROM charges
          WHERE tenant_id = (SELECT tenant_id FROM bench_pairs WHERE n = :n)
            AND amount_paid_gnf < amount_due_gnf
          ORDER BY period, id
          FOR UPDATE) c) oc
\gset
WITH inserted AS (
    INSERT INTO payments
      (tenant_id, site_id, kind, amount_gnf, method, operator_reference, payer_phone,
       receipt_number, occurred_at, received_at, agent_id, recorded_by,
       interaction_id, promise_id, mission_id, notes, reverses_payment_id, reason,
       credit_gnf, request_id)
    SELECT t.id, t.site_id, 'payment', 400000, 'cash', NULL, NULL,
           next_receipt_number(t.site_id, 2026), now() - interval '5 minutes', now(),
           p.agent_id, p.agent_id, NULL, NULL, NULL, '', NULL, NULL, 0,
           md5(:key::text)::uuid
    FROM bench_pairs p JOIN tenants t ON t.id = p.tenant_id WHERE p.n = :n
    RETURNING id, receipt_number, occurred_at, received_at, agent_id, recorded_by),
event AS (
    INSERT INTO score_events (agent_id, day, kind, points, payment_id, occurred_at)
    SELECT i.agent_id, current_date, 'payment', 3, i.id, i.occurred_at FROM inserted i
    ON CONFLICT (kind, payment_id) WHERE payment_id IS NOT NULL DO NOTHING
    RETURNING agent_id, day, points),
daily AS (
    INSERT INTO agent_daily_scores AS s
      (agent_id, day, score, payments_count, payments_gnf)
    SELECT agent_id, day, points, 1, 400000 FROM event
    ON CONFLICT (agent_id, day) DO UPDATE
    SET score = s.score + EXCLUDED.score,
        payments_count = s.payments_count + EXCLUDED.payments_count,
        payments_gnf = s.payments_gnf + EXCLUDED.payments_gnf)
SELECT i.id AS payment_id, i.receipt_number, i.occurred_at, i.received_at,
       (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
       (SELECT full_name FROM users WHERE id = i.recorded_by) AS recorded_by_name,
       (SELECT coalesce(sum(points), 0)::bigint FROM event) AS score_points
FROM inserted i
\gset
\if :has_charge
WITH allocation AS (
    INSERT INTO payment_allocations (payment_id, charge_id, amount_gnf)
    VALUES (:payment_id::uuid, :charge_id, least(400000, :outstanding))),
charge AS (
    UPDATE charges
    SET amount_paid_gnf = amount_paid_gnf + least(400000, :outstanding),
        paid_in_full_at = CASE WHEN amount_paid_gnf + least(400000, :outstanding) = amount_due_gnf
                               THEN coalesce(paid_in_full_at, now()) END
    WHERE id = :charge_id
    RETURNING period, amount_due_gnf)
SELECT period,
       (amount_due_gnf - least(400000, :outstanding)
        - (SELECT coalesce(sum(b.amount_gnf), 0) FROM payment_allocations b
           WHERE b.charge_id = :charge_id))::bigint AS outstanding_after_gnf
FROM charge;
\endif
WITH audit AS (
    INSERT INTO audit_log
      (actor_id, actor_role, action, target_type, target_id, request_id, client_ip, outcome,
       details)
    SELECT p.agent_id, 'agent', 'collections.payments.record', 'payment',
           :payment_id::text, md5(:key::text)::uuid, '127.0.0.1'::inet, 'ok',
           jsonb_build_object('tenant_id', p.tenant_id, 'amount_gnf', 400000, 'method', 'cash')
    FROM bench_pairs p WHERE p.n = :n)
UPDATE idempotency_keys
SET state = 'completed', response_code = 0, response_body = sha512(:key::text::bytea)
WHERE actor_id = (SELECT agent_id FROM bench_pairs WHERE n = :n)
  AND method = '/akig.v1.CollectionsService/RecordPayment'
  AND request_id = md5(:key::text)::uuid AND state = 'in_flight';
COMMIT;
