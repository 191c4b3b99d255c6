-- Reporting views (usable directly by BI tools) and the SQL-homed function of the
-- original system. "Today" is the Africa/Conakry calendar day (UTC+0, no DST).

-- Arrears per site (vue_impayes_par_site). A charge is in arrears when it is not fully paid
-- and its due date is before today. Sites without arrears appear with zeros.
CREATE VIEW site_arrears AS
WITH today AS (
    SELECT (now() AT TIME ZONE 'Africa/Conakry')::date AS d
),
overdue AS (
    SELECT t.site_id,
           c.tenant_id,
           c.amount_due_gnf - c.amount_paid_gnf AS outstanding_gnf,
           c.due_date
    FROM charges c
    JOIN tenants t ON t.id = c.tenant_id
    CROSS JOIN today
    WHERE c.amount_paid_gnf < c.amount_due_gnf
      AND c.due_date < today.d
)
SELECT s.id                                                   AS site_id,
       s.code,
       s.name,
       s.commune,
       s.kind,
       s.is_sensitive,
       count(DISTINCT o.tenant_id)                            AS tenants_in_arrears,
       count(o.tenant_id)                                     AS open_charges,
       coalesce(sum(o.outstanding_gnf), 0)::bigint            AS outstanding_gnf,
       count(o.tenant_id) FILTER (WHERE o.due_date < today.d - 60) AS charges_over_60_days,
       min(o.due_date)                                        AS oldest_due_date
FROM sites s
CROSS JOIN today
LEFT JOIN overdue o ON o.site_id = s.id
GROUP BY s.id, today.d;

-- Agent performance per day (vue_performance_agents): daily scores, the user, and the
-- day's missions.
CREATE VIEW agent_performance AS
SELECT s.agent_id,
       u.username,
       u.full_name,
       u.role_id,
       u.supervisor_id,
       s.day,
       s.score,
       s.calls,
       s.visits,
       s.promises,
       s.payments_count,
       s.payments_gnf,
       s.refusals,
       m.missions_planned,
       m.missions_done,
       m.missions_failed
FROM agent_daily_scores s
JOIN users u ON u.id = s.agent_id
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE mi.status <> 'cancelled') AS missions_planned,
           count(*) FILTER (WHERE mi.status = 'done')       AS missions_done,
           count(*) FILTER (WHERE mi.status = 'failed')     AS missions_failed
    FROM missions mi
    WHERE mi.agent_id = s.agent_id
      AND mi.mission_date = s.day
) m;

-- Daily ranking of agents (role 'agent') (vue_classement_agents).
-- rank: RANK() by score, ties share a rank and leave a gap (1, 1, 3).
-- position: the deterministic display order, also within a tie: score desc, then amount
-- collected desc, then visits desc, then username (case-insensitive), then agent id.
CREATE VIEW agent_ranking AS
SELECT s.day,
       rank() OVER by_score          AS rank,
       row_number() OVER display     AS position,
       s.agent_id,
       u.username,
       u.full_name,
       u.supervisor_id,
       s.score,
       s.calls,
       s.visits,
       s.promises,
       s.payments_count,
       s.payments_gnf,
       s.refusals
FROM agent_daily_scores s
JOIN users u ON u.id = s.agent_id
WHERE u.role_id = 'agent'
WINDOW by_score AS (PARTITION BY s.day ORDER BY s.score DESC),
       display  AS (PARTITION BY s.day ORDER BY s.score DESC, s.payments_gnf DESC, s.visits DESC,
                                                lower(u.username), s.agent_id);

-- Monthly ranking: the same rules over the sums of a calendar month (month = first day).
CREATE VIEW agent_monthly_ranking AS
WITH monthly AS (
    SELECT s.agent_id,
           date_trunc('month', s.day)::date AS month,
           sum(s.score)::bigint             AS score,
           sum(s.calls)::bigint             AS calls,
           sum(s.visits)::bigint            AS visits,
           sum(s.promises)::bigint          AS promises,
           sum(s.payments_count)::bigint    AS payments_count,
           sum(s.payments_gnf)::bigint      AS payments_gnf,
           sum(s.refusals)::bigint          AS refusals
    FROM agent_daily_scores s
    GROUP BY s.agent_id, date_trunc('month', s.day)
)
SELECT m.month,
       rank() OVER by_score          AS rank,
       row_number() OVER display     AS position,
       m.agent_id,
       u.username,
       u.full_name,
       u.supervisor_id,
       m.score,
       m.calls,
       m.visits,
       m.promises,
       m.payments_count,
       m.payments_gnf,
       m.refusals
FROM monthly m
JOIN users u ON u.id = m.agent_id
WHERE u.role_id = 'agent'
WINDOW by_score AS (PARTITION BY m.month ORDER BY m.score DESC),
       display  AS (PARTITION BY m.month ORDER BY m.score DESC, m.payments_gnf DESC, m.visits DESC,
                                                  lower(u.username), m.agent_id);

-- Open charges of one tenant (get_impayes_locataire): every charge issued by p_as_of
-- (period <= p_as_of) and not fully paid, oldest first, with what is left to pay and the
-- days overdue at p_as_of (0 while not yet due). Amounts are the current ones: p_as_of
-- only sets the clock. p_as_of NULL = today in Conakry.
CREATE FUNCTION tenant_arrears(p_tenant_id uuid, p_as_of date DEFAULT NULL)
RETURNS TABLE (
    charge_id        bigint,
    period           date,
    due_date         date,
    amount_due_gnf   bigint,
    amount_paid_gnf  bigint,
    outstanding_gnf  bigint,
    days_overdue     integer
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.id,
           c.period,
           c.due_date,
           c.amount_due_gnf,
           c.amount_paid_gnf,
           c.amount_due_gnf - c.amount_paid_gnf,
           greatest(coalesce(p_as_of, (now() AT TIME ZONE 'Africa/Conakry')::date) - c.due_date, 0)
    FROM charges c
    WHERE c.tenant_id = p_tenant_id
      AND c.amount_paid_gnf < c.amount_due_gnf
      AND c.period <= coalesce(p_as_of, (now() AT TIME ZONE 'Africa/Conakry')::date)
    ORDER BY c.period
$$;
