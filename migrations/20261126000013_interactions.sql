-- What the ledger says about a promise, in one place for every reader (promise lists, the
-- settlement job, tenant cards): the rule of `domain::promise` ("status derived from money")
-- written once in SQL.

-- Payments counted towards a promise: the tenant's payments that are not reversed, made at or
-- after the promise (the occurred_at of the call or visit it was made in) or naming it.
--   paid_gnf          all of them (shown to users; may exceed the amount);
--   paid_by_date_gnf  those made on or before the promised date (Africa/Conakry day): what
--                     decides kept / partially kept / broken.
CREATE FUNCTION promise_payments(p_promise_id uuid)
RETURNS TABLE (paid_gnf bigint, paid_by_date_gnf bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(pay.amount_gnf), 0)::bigint,
           coalesce(sum(pay.amount_gnf) FILTER (
               WHERE (pay.occurred_at AT TIME ZONE 'Africa/Conakry')::date <= pr.promised_date), 0)::bigint
    FROM promises pr
    LEFT JOIN interactions i ON i.id = pr.interaction_id
    JOIN payments pay
      ON pay.tenant_id = pr.tenant_id
     AND pay.kind = 'payment'
     AND (pay.promise_id = pr.id OR pay.occurred_at >= coalesce(i.occurred_at, pr.created_at))
     AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = pay.id)
    WHERE pr.id = p_promise_id
$$;

-- The status of a promise on a day (Africa/Conakry), as `PromiseProgress::status_on` derives it:
-- a stored final status stands; a pending promise is kept once the payments made by its date
-- cover the amount, pending while its date has not passed, then partially kept or broken.
-- Lets readers show the true status before the settlement job has stored it.
CREATE FUNCTION promise_derived_status(
    p_status text, p_amount_gnf bigint, p_promised_date date, p_paid_by_date_gnf bigint,
    p_today date
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_status <> 'pending' THEN p_status
        WHEN p_paid_by_date_gnf >= p_amount_gnf THEN 'kept'
        WHEN p_today <= p_promised_date THEN 'pending'
        WHEN p_paid_by_date_gnf > 0 THEN 'partially_kept'
        ELSE 'broken'
    END
$$;

-- The same, for one promise by id (tenant cards, timelines).
CREATE FUNCTION promise_status_on(p_promise_id uuid, p_today date) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT promise_derived_status(pr.status, pr.amount_gnf, pr.promised_date,
                                  pp.paid_by_date_gnf, p_today)
    FROM promises pr CROSS JOIN LATERAL promise_payments(pr.id) pp
    WHERE pr.id = p_promise_id
$$;

-- Promise lists by promised date then tenant name (ListPromises keyset order).
CREATE INDEX promises_promised_date_idx ON promises (promised_date, tenant_id);
