-- pgbench model of the statements one RecordVisit runs (an agent's visit with no promise),
-- in order and with the server's SQL text: BEGIN, the idempotency key claim, the tenant lock, the visit INSERT with its score events and daily
-- figures, the key completion with the audit row, COMMIT. The caller's standing is served from
-- the shared cache (ADR 0009), so no statement of its own. Run by ops/bench.sh to show what
-- the database alone makes of that work, without the server: the server's rate divided by
-- this one is its own overhead. Keep it in step with server/auth/layer.rs,
-- server/idempotency.rs and server/store/{sessions,tenants,interactions,audit}.rs.
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
           '/akig.v1.CollectionsService/RecordVisit', md5(:key::text)::uuid,
           sha256(:key::text::bytea), 'in_flight', now(), now() + interval '30 days'
    FROM lock WHERE locked
    ON CONFLICT (actor_id, method, request_id) DO NOTHING
    RETURNING 1)
SELECT locked, EXISTS (SELECT 1 FROM claimed) FROM lock;
SELECT t.id, t.site_id, t.active, t.credit_gnf, t.home_latitude, t.home_longitude,
       t.full_name, t.unit, s.name AS site_name
FROM tenants t JOIN sites s ON s.id = t.site_id
WHERE t.id = (SELECT tenant_id FROM bench_pairs WHERE n = :n) FOR NO KEY UPDATE OF t;
WITH inserted AS (
    INSERT INTO interactions
      (kind, tenant_id, agent_id, outcome, notes, occurred_at, received_at, mission_id,
       request_id, call_phone, call_duration_secs, latitude, longitude, accuracy_m,
       fix_time, distance_to_tenant_m, is_far_from_tenant, is_mock_location)
    SELECT 'visit', p.tenant_id, p.agent_id, 'absent', 'Locataire absent, voisin prévenu',
           now() - interval '5 minutes', now(), NULL, md5(:key::text)::uuid, NULL, NULL,
           9.6412, -13.5784, 12, now() - interval '5 minutes', 42.5, false, false
    FROM bench_pairs p WHERE p.n = :n
    ON CONFLICT ON CONSTRAINT interactions_request_id_key DO NOTHING
    RETURNING id, occurred_at, received_at, fix_time, agent_id),
events AS (
    INSERT INTO score_events (agent_id, day, kind, points, interaction_id, occurred_at)
    SELECT i.agent_id, current_date, e.kind, e.points, i.id, i.occurred_at
    FROM inserted i,
         unnest('{visit}'::text[], '{1}'::int[]) WITH ORDINALITY AS e(kind, points, n)
    ORDER BY e.n
    ON CONFLICT DO NOTHING
    RETURNING points),
daily AS (
    INSERT INTO agent_daily_scores AS s
      (agent_id, day, score, calls, visits, promises, refusals)
    SELECT i.agent_id, current_date, (SELECT coalesce(sum(points), 0)::int FROM events), 0, 1,
           0, 0
    FROM inserted i
    ON CONFLICT (agent_id, day) DO UPDATE
    SET score = s.score + EXCLUDED.score,
        calls = s.calls + EXCLUDED.calls,
        visits = s.visits + EXCLUDED.visits,
        promises = s.promises + EXCLUDED.promises,
        refusals = s.refusals + EXCLUDED.refusals)
SELECT i.id, i.occurred_at, i.received_at, i.fix_time,
       (SELECT full_name FROM users WHERE id = i.agent_id) AS agent_name,
       (SELECT coalesce(sum(points), 0)::bigint FROM events) AS score_points
FROM inserted i;
WITH audit AS (
    INSERT INTO audit_log
      (actor_id, actor_role, action, target_type, target_id, request_id, client_ip, outcome,
       details)
    SELECT p.agent_id, 'agent', 'collections.visits.record', 'interaction',
           md5(:key::text), md5(:key::text)::uuid, '127.0.0.1'::inet, 'ok',
           jsonb_build_object('tenant_id', p.tenant_id, 'agent_id', p.agent_id,
                              'outcome', 'absent', 'far_away', false)
    FROM bench_pairs p WHERE p.n = :n)
UPDATE idempotency_keys
SET state = 'completed', response_code = 0, response_body = sha512(:key::text::bytea)
WHERE actor_id = (SELECT agent_id FROM bench_pairs WHERE n = :n)
  AND method = '/akig.v1.CollectionsService/RecordVisit'
  AND request_id = md5(:key::text)::uuid AND state = 'in_flight';
COMMIT;
