-- charges.last_paid_at (ADR 0011, read model 1) counts the valid payments only: the latest
-- occurred_at of a payment, not reversed, with rows on the charge. It counted every entry
-- with rows on it, so a charge a bounced cheque's reversal reopened and a later payment paid
-- again showed the reversal's date as its payment date in GetTenantArrears today, while the
-- same read "as of" a past day (the replay, `domain::ledger`) and the tenant's history showed
-- the day it was paid. The rule is now the replay's, whose lines are exactly the rows of the
-- valid payments; last_payment_on already followed it.

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
                 max(p.occurred_at) FILTER (WHERE p.kind = 'payment' AND r.id IS NULL)
                     AS last_at
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

-- The charges whose figure can change: those with rows of a reversal entry.
SELECT charges_paid_by_due_recount(ARRAY(
    SELECT DISTINCT pa.charge_id
    FROM payment_allocations pa JOIN payments p ON p.id = pa.payment_id
    WHERE p.kind = 'reversal'));
