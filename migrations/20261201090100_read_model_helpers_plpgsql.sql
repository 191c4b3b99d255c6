-- The helpers the read-model triggers call (ADR 0011), and tenant_oldest_open_recount, keep one
-- generic plan per connection instead of being planned again at every call.
--
-- As SQL functions whose bodies write, the helpers were parsed, analysed and planned at every
-- call; tenant_oldest_open_recount, plpgsql since 20261201040100, was still planned at every
-- call, because plpgsql's plan cache compares a generic plan (which estimates 100 rows for
-- `unnest` of an array parameter) with custom plans (which know the array has 1 to 3
-- elements) and so never settled on the generic one. pg_stat_statements, demo data, one caller:
-- the calls cost 0.26-0.66 ms against 0.04-0.16 ms for their statements.
--
-- So they become plpgsql with `plan_cache_mode = force_generic_plan`: each statement is
-- prepared and planned once per connection. The statements are unchanged (but for the one of
-- charges_paid_by_due_recount, below); their generic plans
-- (EXPLAIN with plan_cache_mode = force_generic_plan) are index nested loops from the array's
-- elements, the plans the custom ones were, so a large array (a bulk load) costs in proportion
-- to its length. Side by side through the payment benchmark: docs/performance.md.
--
-- charges_paid_by_due_recount also keeps charges.last_paid_at (ADR 0011, read model 1), with
-- paid_by_due_gnf and last_payment_on, from the same rows: max(payments.occurred_at) over the
-- charge's allocation rows, reversal entries included, as before. A statement on
-- payment_allocations now updates `charges` once instead of twice (each UPDATE of `charges`
-- fires the charges' read-model triggers), and the three last_paid triggers go. The charges
-- recounted are those of the rows added, or removed or changed in payment, charge or amount
-- (charges_paid_by_due_added / _removed): every charge whose last payment can have moved.

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

CREATE OR REPLACE FUNCTION public.due_days_add(parts charge_part[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
BEGIN
    INSERT INTO due_days AS d (site_id, due_date, shard, charges, due_gnf, paid_gnf, on_time,
                               open_charges)
    SELECT t.site_id, x.due_date, tenant_shard(x.tenant_id),
           sum(x.sign * (x.amount_due_gnf > 0)::int), sum(x.sign * x.amount_due_gnf),
           sum(x.sign * x.amount_paid_gnf), sum(x.sign * x.paid_on_time::int),
           sum(x.sign * (x.amount_paid_gnf < x.amount_due_gnf)::int)
    FROM unnest(parts) x
    JOIN tenants t ON t.id = x.tenant_id
    GROUP BY 1, 2, 3
    HAVING sum(x.sign * (x.amount_due_gnf > 0)::int) <> 0 OR sum(x.sign * x.amount_due_gnf) <> 0
        OR sum(x.sign * x.amount_paid_gnf) <> 0 OR sum(x.sign * x.paid_on_time::int) <> 0
        OR sum(x.sign * (x.amount_paid_gnf < x.amount_due_gnf)::int) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (site_id, due_date, shard) DO UPDATE SET
        charges = d.charges + excluded.charges, due_gnf = d.due_gnf + excluded.due_gnf,
        paid_gnf = d.paid_gnf + excluded.paid_gnf, on_time = d.on_time + excluded.on_time,
        open_charges = d.open_charges + excluded.open_charges;
END;
$function$;

CREATE OR REPLACE FUNCTION public.paid_months_add(parts allocation_part[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
BEGIN
    INSERT INTO paid_months AS m (site_id, due_date, month, shard, paid_gnf)
    SELECT t.site_id, c.due_date,
           date_trunc('month', p.occurred_at AT TIME ZONE 'Africa/Conakry')::date,
           tenant_shard(c.tenant_id), sum(x.amount_gnf)
    FROM unnest(parts) x
    JOIN payments p ON p.id = x.payment_id
    JOIN charges c ON c.id = x.charge_id
    JOIN tenants t ON t.id = c.tenant_id
    GROUP BY 1, 2, 3, 4 HAVING sum(x.amount_gnf) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, due_date, month, shard) DO UPDATE SET paid_gnf = m.paid_gnf + excluded.paid_gnf;
END;
$function$;

CREATE OR REPLACE FUNCTION public.promise_days_add(parts promise_part[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
BEGIN
    INSERT INTO promise_days AS d (site_id, status, changed_on, shard, promises, amount_gnf)
    SELECT t.site_id, x.status, promise_changed_on(x.changed_at), tenant_shard(x.tenant_id),
           sum(x.sign), sum(x.sign * x.amount_gnf)
    FROM unnest(parts) x JOIN tenants t ON t.id = x.tenant_id
    GROUP BY 1, 2, 3, 4
    HAVING sum(x.sign) <> 0 OR sum(x.sign * x.amount_gnf) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, status, changed_on, shard) DO UPDATE
        SET promises = d.promises + excluded.promises,
            amount_gnf = d.amount_gnf + excluded.amount_gnf;
END;
$function$;

CREATE OR REPLACE FUNCTION public.site_tenants_add(deltas uuid[], signs integer[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
BEGIN
    INSERT INTO site_tenants AS s (site_id, active)
    SELECT d.site_id, sum(d.sign) FROM unnest(deltas, signs) d(site_id, sign)
    GROUP BY 1 HAVING sum(d.sign) <> 0 ORDER BY 1
    ON CONFLICT (site_id) DO UPDATE SET active = s.active + excluded.active;
END;
$function$;

ALTER FUNCTION tenant_oldest_open_recount(uuid[]) SET plan_cache_mode = force_generic_plan;

DROP TRIGGER payment_allocations_last_paid_insert ON payment_allocations;
DROP TRIGGER payment_allocations_last_paid_update ON payment_allocations;
DROP TRIGGER payment_allocations_last_paid_delete ON payment_allocations;
DROP FUNCTION charges_last_paid_added();
DROP FUNCTION charges_last_paid_recount();
