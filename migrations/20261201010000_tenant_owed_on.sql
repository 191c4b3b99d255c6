-- What a tenant owes on `day` from its open charges due by then: the `ReadCharges` case of
-- `domain::arrears::OpenCharges::owed_on`, the last branch of its SQL mirror
-- (`store::markers::OWED_SQL`), run only for the tenants with two open due dates or more after
-- the day.
--
-- A function of its own (not inlined: its body reads a table) so that its cost can be told to
-- the planner. As a scalar subquery in a CASE branch it was charged to every row of the map
-- (about 57 cost units a tenant, 2.8 million for a city of 45,000 tenants in arrears), which
-- drowned the real differences between plans under the planner's 1 % fuzz: a city's per-cell
-- sums were sorted on disk rather than hashed, and read through the index rather than in
-- sequence. COST 1 (one operator) is what it costs per row on average, the branch being rare.
CREATE FUNCTION tenant_owed_on(tenant uuid, day date) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE COST 1 AS $$
    SELECT coalesce(sum(c.amount_due_gnf - c.amount_paid_gnf), 0)::bigint
    FROM charges c
    WHERE c.tenant_id = tenant AND c.amount_paid_gnf < c.amount_due_gnf AND c.due_date <= day
$$;
