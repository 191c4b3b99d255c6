-- charges.last_paid_at (ADR 0011, read model 1) is kept by charges_paid_by_due_recount, with
-- paid_by_due_gnf and last_payment_on, from the same rows: max(payments.occurred_at) over the
-- charge's allocation rows, reversal entries included, as before. A statement on
-- payment_allocations now updates `charges` once instead of twice, and each UPDATE of
-- `charges` fires the charges' read-model triggers: a payment that pays a charge ran them
-- three times, now twice (docs/performance.md, "Hot rows, plans and the append path of the
-- payment").
--
-- The charges recounted are those of the rows added, or removed or changed in payment, charge
-- or amount (charges_paid_by_due_added / _removed): every charge whose last payment can have
-- moved (the last_paid triggers recounted those of rows whose payment or charge changed).

CREATE OR REPLACE FUNCTION charges_paid_by_due_recount(charge_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode TO 'force_generic_plan'
AS $$
BEGIN
    UPDATE charges c SET paid_by_due_gnf = k.by_due, last_payment_on = k.last_on,
                         last_paid_at = k.last_at
    FROM (SELECT x.id,
                 coalesce(sum(pa.amount_gnf) FILTER (
                     WHERE (coalesce(o.occurred_at, p.occurred_at)
                            AT TIME ZONE 'Africa/Conakry')::date <= x.due_date), 0)::bigint
                     AS by_due,
                 max((p.occurred_at AT TIME ZONE 'Africa/Conakry')::date) FILTER (
                     WHERE p.kind = 'payment' AND r.id IS NULL) AS last_on,
                 max(p.occurred_at) AS last_at
          FROM (SELECT DISTINCT unnest(charge_ids) AS id) u
          JOIN charges x ON x.id = u.id
          LEFT JOIN payment_allocations pa ON pa.charge_id = x.id
          LEFT JOIN payments p ON p.id = pa.payment_id
          LEFT JOIN payments o ON o.id = p.reverses_payment_id
          LEFT JOIN payments r ON r.reverses_payment_id = p.id
          GROUP BY x.id) k
    WHERE c.id = k.id
      AND (c.paid_by_due_gnf, c.last_payment_on, c.last_paid_at)
          IS DISTINCT FROM (k.by_due, k.last_on, k.last_at);
END;
$$;

DROP TRIGGER payment_allocations_last_paid_insert ON payment_allocations;
DROP TRIGGER payment_allocations_last_paid_update ON payment_allocations;
DROP TRIGGER payment_allocations_last_paid_delete ON payment_allocations;
DROP FUNCTION charges_last_paid_added();
DROP FUNCTION charges_last_paid_recount();
