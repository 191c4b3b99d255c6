-- pgbench model of the statements one RecordPayment runs since the ledger replay (ADR 0010):
-- an agent's cash payment (25,000 to 500,000 GNF, as akig-bench sends), in order and with the
-- server's SQL text, captured from PostgreSQL's log (log_statement = 'all') during
-- `akig-bench --rpc payment` (see docs/performance.md):
--   BEGIN; the idempotency key claim; the tenant lock; the pending promise; the tenant's
--   open charges, and whether a payment of the tenant sorts after this one (none does: the
--   payment is appended, `store::payments::open_ledger`); the payment INSERT, not numbered yet
--   (its score event in it; it sets generic plans for the statements after it); the
--   replay's differences in one statement holding only the parts with something to write
--   (allocation rows deleted, changed, added; charges' paid figures; the tenant's credit when
--   it changes); when the payment counts towards a pending promise, its coverage read, its
--   status stored and the promise read back (3 statements, on ~9 % of the bench's calls); the
--   numbering: the agent's daily figures, then the receipt number (the site's counter row,
--   locked until COMMIT) and the site's collected_days (trigger), in one statement; the key
--   completion with the audit row; COMMIT.
-- Where pgbench needs a value from a statement (\gset wants exactly one row, without NULLs),
-- the server's statement is wrapped in an outer SELECT that reads it (same rows, same locks):
-- the promise as a count and an id, the oldest open charge picked from the open charges' arrays.
-- The replay's outcome is modelled for a payment made after the tenant's others: the payment
-- goes to the oldest open charge, the rest to the credit (the server spreads a larger
-- remainder over the next open charges: more rows in the same statement).
-- The caller's standing is served from the shared cache (ADR 0009): no statement of its own.
-- Keep in step with server/idempotency.rs and server/store/{tenants,promises,charges,
-- payments,ledger,audit}.rs. bench_pairs (n, agent_id, tenant_id) is created by ops/bench.sh.
\set n random(1, :pairs)
\set key random(1, 9000000000000000000)
\set amount 25000 * random(1, 20)
BEGIN;
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(:key) AS locked
    FROM set_config('idle_in_transaction_session_timeout', '60000ms', true)),
claimed AS (
    INSERT INTO idempotency_keys
      (actor_id, method, request_id, fingerprint, state, created_at, expires_at)
    SELECT (SELECT agent_id FROM bench_pairs WHERE n = :n),
           '/akig.v1.CollectionsService/RecordPayment', md5(:key::text)::uuid,
           sha256(:key::text::bytea), 'in_flight', now(), now() + interval '720 hours'
    FROM lock WHERE locked
    ON CONFLICT (actor_id, method, request_id) DO NOTHING
    RETURNING 1)
SELECT lock.locked, EXISTS (SELECT 1 FROM claimed) AS inserted,
       k.fingerprint, k.state, k.response_body,
       k.expires_at <= now() AS expired,
       k.created_at <= now() - interval '1 minute' AS stale
FROM lock LEFT JOIN idempotency_keys k
  ON k.actor_id = (SELECT agent_id FROM bench_pairs WHERE n = :n)
 AND k.method = '/akig.v1.CollectionsService/RecordPayment' AND k.request_id = md5(:key::text)::uuid;
SELECT t.id AS tenant_id, t.credit_gnf AS credit FROM (
SELECT t.id, t.site_id, t.active, t.credit_gnf, t.home_latitude, t.home_longitude,
       t.full_name, t.unit, s.name AS site_name
FROM tenants t JOIN sites s ON s.id = t.site_id
WHERE t.id = (SELECT tenant_id FROM bench_pairs WHERE n = :n) FOR NO KEY UPDATE OF t) t
\gset
SELECT count(*) AS has_promise, coalesce(max(p.id::text), '') AS promise_id FROM (
SELECT p.id, p.tenant_id, p.status, p.amount_gnf,
       p.promised_date, p.covered_gnf, coalesce(i.occurred_at, p.created_at) AS made_at
FROM promises p LEFT JOIN interactions i ON i.id = p.interaction_id WHERE p.tenant_id = :tenant_id::uuid AND p.status = 'pending'
ORDER BY p.created_at DESC, p.id DESC LIMIT 1 FOR UPDATE OF p) p
\gset
SELECT coalesce(o.id, 0) AS charge_id, (o.id IS NOT NULL)::int AS open,
       coalesce(o.due - o.paid, 0) AS outstanding FROM (
SELECT EXISTS (SELECT 1 FROM payments p
               WHERE p.tenant_id = :tenant_id::uuid AND p.kind = 'payment'
                 AND p.occurred_at >= date_trunc('second', now())
                 AND (p.occurred_at, p.received_at, p.id)
                     >= (date_trunc('second', now()), now(), gen_random_uuid())) AS later,
       coalesce(array_agg(c.id ORDER BY c.period, c.id), '{}') AS charge_ids,
       coalesce(array_agg(c.period ORDER BY c.period, c.id), '{}') AS periods,
       coalesce(array_agg(c.due_date ORDER BY c.period, c.id), '{}') AS due_dates,
       coalesce(array_agg(c.amount_due_gnf ORDER BY c.period, c.id), '{}') AS dues,
       coalesce(array_agg(c.amount_paid_gnf ORDER BY c.period, c.id), '{}') AS paids,
       coalesce(array_agg(c.paid_in_full_at ORDER BY c.period, c.id), '{}') AS paid_in_full,
       coalesce(array_agg(c.last_paid_at ORDER BY c.period, c.id), '{}') AS last_paid
FROM charges c
WHERE c.tenant_id = :tenant_id::uuid AND c.amount_paid_gnf < c.amount_due_gnf) t
LEFT JOIN LATERAL (
    SELECT c.id, c.due, c.paid
    FROM unnest(t.charge_ids, t.periods, t.dues, t.paids) AS c(id, period, due, paid)
    WHERE c.paid < c.due ORDER BY c.period, c.id LIMIT 1) o ON true
\gset
\set allocated :open * least(:amount, :outstanding)
\set paid_full CASE WHEN :open = 1 AND :allocated = :outstanding THEN 1 ELSE 0 END
WITH inserted AS (
    INSERT INTO payments
      (id, tenant_id, site_id, kind, amount_gnf, method, operator_reference, payer_phone,
       receipt_number, occurred_at, received_at, agent_id, recorded_by,
       interaction_id, promise_id, mission_id, notes, reverses_payment_id, reason,
       credit_gnf, request_id)
    SELECT gen_random_uuid(), t.id, t.site_id, 'payment', (:amount)::bigint, 'cash', NULL, NULL,
           NULL, date_trunc('second', now()), now(),
           p.agent_id, NULL, NULL, NULLIF(:promise_id, '')::uuid, NULL, '', NULL, NULL,
           (:amount)::bigint - (:allocated)::bigint, md5(:key::text)::uuid
    FROM bench_pairs p JOIN tenants t ON t.id = p.tenant_id WHERE p.n = :n
    RETURNING id, occurred_at, received_at, agent_id, recorded_by),
event AS (
    INSERT INTO score_events (agent_id, day, kind, points, payment_id, occurred_at)
    SELECT i.agent_id, current_date, 'payment', 3, i.id, i.occurred_at FROM inserted i
    WHERE i.agent_id IS NOT NULL
    ON CONFLICT (kind, payment_id) WHERE payment_id IS NOT NULL DO NOTHING
    RETURNING points)
SELECT i.id AS payment_id, i.occurred_at, i.received_at,
       (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
       (SELECT full_name FROM users WHERE id = i.recorded_by) AS recorded_by_name,
       (SELECT coalesce(sum(points), 0)::bigint FROM event) AS score_points,
       EXISTS (SELECT 1 FROM event) AS scored,
       set_config('plan_cache_mode', 'force_generic_plan', true) AS plan_cache_mode
FROM inserted i
\gset
\if :open
\if :amount > :allocated
WITH part0 AS (
    INSERT INTO payment_allocations
      (payment_id, charge_id, amount_gnf, outstanding_after_gnf)
    SELECT * FROM unnest(ARRAY[:payment_id]::uuid[], ARRAY[(:charge_id)::bigint]::bigint[],
                         ARRAY[(:allocated)::bigint]::bigint[], ARRAY[(:outstanding)::bigint - (:allocated)::bigint]::bigint[])),
part1 AS (
    UPDATE charges c SET amount_paid_gnf = u.paid, paid_in_full_at = u.paid_in_full_at
    FROM unnest(ARRAY[(:charge_id)::bigint]::bigint[],
                ARRAY[(SELECT amount_paid_gnf + (:allocated)::bigint FROM charges WHERE id = (:charge_id)::bigint)]::bigint[],
                ARRAY[CASE WHEN (:paid_full)::bigint = 1 THEN now() END]::timestamptz[])
         AS u(id, paid, paid_in_full_at)
    WHERE c.id = u.id AND c.tenant_id = :tenant_id::uuid)
UPDATE tenants SET credit_gnf = (:credit)::bigint + (:amount)::bigint - (:allocated)::bigint
WHERE id = :tenant_id::uuid AND credit_gnf <> (:credit)::bigint + (:amount)::bigint - (:allocated)::bigint;
\else
WITH part0 AS (
    INSERT INTO payment_allocations
      (payment_id, charge_id, amount_gnf, outstanding_after_gnf)
    SELECT * FROM unnest(ARRAY[:payment_id]::uuid[], ARRAY[(:charge_id)::bigint]::bigint[],
                         ARRAY[(:allocated)::bigint]::bigint[], ARRAY[(:outstanding)::bigint - (:allocated)::bigint]::bigint[]))
UPDATE charges c SET amount_paid_gnf = u.paid, paid_in_full_at = u.paid_in_full_at
FROM unnest(ARRAY[(:charge_id)::bigint]::bigint[],
            ARRAY[(SELECT amount_paid_gnf + (:allocated)::bigint FROM charges WHERE id = (:charge_id)::bigint)]::bigint[],
            ARRAY[CASE WHEN (:paid_full)::bigint = 1 THEN now() END]::timestamptz[])
     AS u(id, paid, paid_in_full_at)
WHERE c.id = u.id AND c.tenant_id = :tenant_id::uuid;
\endif
\else
UPDATE tenants SET credit_gnf = (:credit)::bigint + (:amount)::bigint
WHERE id = :tenant_id::uuid AND credit_gnf <> (:credit)::bigint + (:amount)::bigint;
\endif
\if :has_promise
SELECT paid_by_date_gnf FROM promise_payments(:promise_id::uuid)
\gset
UPDATE promises
SET covered_gnf = (:paid_by_date_gnf)::bigint, status = 'pending',
    status_changed_at = CASE WHEN NOT false THEN status_changed_at
                             WHEN 'pending' = 'pending' THEN NULL
                             ELSE now() END
WHERE id = :promise_id::uuid;
SELECT p.id, p.tenant_id, t.full_name AS tenant_name, t.site_id,
       s.name AS site_name, t.unit AS unit_label, p.agent_id, a.full_name AS agent_name,
       p.amount_gnf, p.promised_date, p.status AS stored_status,
       promise_derived_status(p.status, p.amount_gnf, p.promised_date,
                              pp.paid_by_date_gnf, current_date) AS status,
       pp.paid_gnf, p.interaction_id,
       coalesce(i.occurred_at, p.created_at) AS made_at,
       coalesce(i.received_at, p.created_at) AS received_at,
       coalesce(p.original_promised_date, p.rescheduled_from, p.promised_date)
           AS original_promised_date,
       greatest(p.reschedule_count, (p.rescheduled_from IS NOT NULL)::int) AS reschedule_count,
       CASE WHEN p.status = 'cancelled' THEN p.cancel_reason ELSE p.reschedule_reason END
           AS last_change_reason,
       p.status_changed_at
FROM promises p
JOIN tenants t ON t.id = p.tenant_id
JOIN sites s ON s.id = t.site_id
JOIN users a ON a.id = p.agent_id
LEFT JOIN interactions i ON i.id = p.interaction_id
CROSS JOIN LATERAL promise_payments(p.id) pp WHERE p.id = :promise_id::uuid;
\endif
WITH daily AS (
    INSERT INTO agent_daily_scores AS s
      (agent_id, day, score, payments_count, payments_gnf)
    SELECT p.agent_id, current_date, 3, 1, (:amount)::bigint
    FROM bench_pairs p WHERE p.n = :n
    ON CONFLICT (agent_id, day) DO UPDATE
    SET score = s.score + EXCLUDED.score,
        payments_count = s.payments_count + EXCLUDED.payments_count,
        payments_gnf = s.payments_gnf + EXCLUDED.payments_gnf
    RETURNING 1)
UPDATE payments SET receipt_number = next_receipt_number(site_id, 2026)
WHERE id = :payment_id AND receipt_number IS NULL AND (SELECT count(*) FROM daily) >= 0
RETURNING receipt_number
\gset
WITH audit AS (INSERT INTO audit_log
    (actor_id, actor_role, action, target_type, target_id, request_id, client_ip,
     outcome, details)
  SELECT p.agent_id, 'agent', 'collections.payments.record', 'payment', :payment_id::text,
         md5(:key::text)::uuid, '127.0.0.1'::inet, 'ok',
         jsonb_build_object('tenant_id', p.tenant_id, 'amount_gnf', (:amount)::bigint, 'method', 'cash',
                            'agent_id', p.agent_id, 'receipt_number', :receipt_number::text)
  FROM bench_pairs p WHERE p.n = :n)
UPDATE idempotency_keys SET state = 'completed', response_code = 0,
       response_body = sha512(:key::text::bytea)
WHERE actor_id = (SELECT agent_id FROM bench_pairs WHERE n = :n)
  AND method = '/akig.v1.CollectionsService/RecordPayment'
  AND request_id = md5(:key::text)::uuid AND state = 'in_flight';
COMMIT;
