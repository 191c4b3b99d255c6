-- Site figures "as of" a past moment when a payment made before it was reversed after it
-- (ADR 0011, "Payments reversed later"): GetSite's trend (the arrears at the end of each past
-- month) and GetDailyStats' amount due at the start of a day add up allocation rows dated by
-- their entry. That is exact for a tenant whose ledger had no such reversal, but not for one
-- that had: the reversed payment's rows stay (frozen, dated by the payment) while the replay
-- moved the tenant's later payments onto the months it had paid, dated by those payments, and
-- the reversal's negative rows count only from its own date. Such a tenant could come out with
-- the same month paid twice, even with negative arrears that hid other tenants' debt.
--
-- For a tenant, the allocation is FIFO over its charges (oldest first), so what its payments
-- put on the charges due by a day is min(V, C): C what those charges ask, V the payments that
-- had happened by then and were not reversed by then (ADR 0010; charges fall due in the order
-- of their periods). Its arrears then are greatest(0, C - V). The row sums stay as they are
-- for every other tenant; `arrears_reversed_later` gives, per site, what to add so that each
-- tenant with a payment before a moment reversed at or after it counts greatest(0, C - V)
-- instead of C minus its rows: a few tenants (reversals are rare, and few straddle a moment).

-- One pass over the sites' reversals since the earliest moment asked (a partial index of
-- reversal entries; their payments by primary key), whatever the number of moments. A
-- reversal is looked for at the site it was recorded at: a tenant moved to another site
-- after such a reversal is corrected on neither (moves between sites are corrections of data,
-- rare; the row sums follow the tenant).
--   cuts[i]:   charges due on or before this day count;
--   untils[i]: entries that occurred before this instant count;
--   sites:     the sites (tenants' current sites, as the row sums), NULL for every site.
-- Returns, per moment (its index in the arrays, 1-based) and site, the GNF to add.

CREATE INDEX payments_reversals_site_occurred_at_idx ON payments (site_id, occurred_at)
    INCLUDE (reverses_payment_id) WHERE kind = 'reversal';

CREATE FUNCTION arrears_reversed_later(cuts date[], untils timestamptz[], sites uuid[])
RETURNS TABLE (moment integer, site_id uuid, correction_gnf bigint)
LANGUAGE sql STABLE AS $$
    WITH moments AS (
        SELECT m.i::integer AS i, m.cut, m.until
        FROM unnest(cuts, untils) WITH ORDINALITY AS m(cut, until, i)),
    straddling AS (
        SELECT DISTINCT m.i, m.cut, m.until, p.tenant_id
        FROM payments r
        JOIN payments p ON p.id = r.reverses_payment_id
        JOIN moments m ON p.occurred_at < m.until AND r.occurred_at >= m.until
        WHERE r.kind = 'reversal' AND r.occurred_at >= (SELECT min(until) FROM moments)
          AND (sites IS NULL OR r.site_id = ANY (sites)))
    SELECT s.i, t.site_id,
           sum(greatest(0, ch.due - v.paid) - (ch.due - ra.allocated))::bigint
    FROM straddling s
    JOIN tenants t ON t.id = s.tenant_id AND (sites IS NULL OR t.site_id = ANY (sites))
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(c.amount_due_gnf), 0) AS due
        FROM charges c
        WHERE c.tenant_id = s.tenant_id AND c.due_date <= s.cut) ch
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(p.amount_gnf) FILTER (
                   WHERE NOT EXISTS (SELECT 1 FROM payments x
                                     WHERE x.reverses_payment_id = p.id
                                       AND x.occurred_at < s.until)), 0) AS paid
        FROM payments p
        WHERE p.tenant_id = s.tenant_id AND p.kind = 'payment' AND p.occurred_at < s.until) v
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(pa.amount_gnf), 0) AS allocated
        FROM charges c
        JOIN payment_allocations pa ON pa.charge_id = c.id
        JOIN payments e ON e.id = pa.payment_id
        WHERE c.tenant_id = s.tenant_id AND c.due_date <= s.cut AND e.occurred_at < s.until) ra
    GROUP BY s.i, t.site_id
$$;
