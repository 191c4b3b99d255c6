-- Read-model triggers (ADR 0011) return at once when their statement changed nothing they count.
--
-- Statement-level triggers fire for every statement, rows or none, and several of them update
-- `charges` again (`charges_last_paid_*`, `charges_paid_by_due_recount`), which fires the
-- `charges` triggers once more. A payment's write ran about three rounds of the `charges`
-- triggers, most of them on rows whose counted fields had not changed. Each function below now
-- looks at its transition tables first and returns when there is nothing to add. What they add
-- is unchanged, so the read models hold the same rows as before.
--
-- An UPDATE's old and new rows are matched by id in one join the planner can hash (a full
-- join: a row whose id changed has no counterpart and counts as removed and added). A bulk
-- UPDATE (the seeds write every charge's paid figures) costs one hash join, not a probe of the
-- other transition table per row.
--
-- The triggers on `payment_allocations` that only read OLD TABLE on UPDATE now read NEW TABLE
-- too, to tell a row whose amount, payment or charge changed from one whose
-- `outstanding_after_gnf` alone moved (a replay rewrites those).

-- ---------------------------------------------------------------------------------------------
-- charges: open_due, due_days, oldest open charge.

CREATE OR REPLACE FUNCTION charges_open_due() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
        INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
        SELECT t.site_id, n.due_date, tenant_shard(n.tenant_id),
               sum(n.amount_due_gnf - n.amount_paid_gnf)
        FROM new_rows n JOIN tenants t ON t.id = n.tenant_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Nothing to add unless a row's open amount, due date, tenant or id changed.
        IF NOT EXISTS (
            SELECT 1 FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            WHERE o.id IS NULL OR n.id IS NULL
               OR (o.amount_due_gnf - o.amount_paid_gnf, o.due_date, o.tenant_id)
                  IS DISTINCT FROM (n.amount_due_gnf - n.amount_paid_gnf, n.due_date, n.tenant_id))
        THEN
            RETURN NULL;
        END IF;
        INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
        SELECT t.site_id, d.due_date, tenant_shard(d.tenant_id), sum(d.open_gnf)
        FROM (SELECT tenant_id, due_date, amount_due_gnf - amount_paid_gnf AS open_gnf FROM new_rows
              UNION ALL
              SELECT tenant_id, due_date, amount_paid_gnf - amount_due_gnf FROM old_rows) d
        JOIN tenants t ON t.id = d.tenant_id
        GROUP BY 1, 2, 3 HAVING sum(d.open_gnf) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
        INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
        SELECT t.site_id, d.due_date, tenant_shard(d.tenant_id),
               -sum(d.amount_due_gnf - d.amount_paid_gnf)
        FROM old_rows d JOIN tenants t ON t.id = d.tenant_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION charges_due_days() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parts charge_part[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
        INSERT INTO due_days AS d (site_id, due_date, shard, charges, due_gnf, paid_gnf, on_time,
                                   open_charges)
        SELECT t.site_id, n.due_date, tenant_shard(n.tenant_id),
               count(*) FILTER (WHERE n.amount_due_gnf > 0), sum(n.amount_due_gnf),
               sum(n.amount_paid_gnf), count(*) FILTER (WHERE n.paid_on_time),
               count(*) FILTER (WHERE n.amount_paid_gnf < n.amount_due_gnf)
        FROM new_rows n JOIN tenants t ON t.id = n.tenant_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET
            charges = d.charges + excluded.charges, due_gnf = d.due_gnf + excluded.due_gnf,
            paid_gnf = d.paid_gnf + excluded.paid_gnf, on_time = d.on_time + excluded.on_time,
            open_charges = d.open_charges + excluded.open_charges;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A row whose counted fields are unchanged would add +1 and -1 of the same part: left
        -- out. Old and new rows meet in one full join on id (hashed on a bulk update).
        parts := ARRAY(
            SELECT p.part
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES
                (n.id IS NOT NULL, ROW(1, n.tenant_id, n.due_date, n.amount_due_gnf,
                                       n.amount_paid_gnf, n.paid_on_time)::charge_part),
                (o.id IS NOT NULL, ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf,
                                        o.amount_paid_gnf, o.paid_on_time)::charge_part))
                AS p(present, part)
            WHERE p.present
              AND (o.id IS NULL OR n.id IS NULL
                   OR (o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                       o.paid_on_time)
                      IS DISTINCT FROM
                      (n.tenant_id, n.due_date, n.amount_due_gnf, n.amount_paid_gnf,
                       n.paid_on_time)));
    ELSE
        parts := ARRAY(
            SELECT ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                       o.paid_on_time)::charge_part FROM old_rows o);
    END IF;
    IF cardinality(parts) > 0 THEN
        PERFORM due_days_add(parts);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION charges_oldest_open() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT DISTINCT tenant_id FROM new_rows
                     WHERE amount_paid_gnf < amount_due_gnf);
    ELSIF TG_OP = 'UPDATE' THEN
        -- Tenants of rows whose open state, due date or tenant changed (both tenants of a
        -- move), and of rows without a counterpart (id changed).
        ids := ARRAY(
            SELECT DISTINCT k.tenant_id
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES (n.tenant_id), (o.tenant_id)) AS k(tenant_id)
            WHERE k.tenant_id IS NOT NULL
              AND (o.id IS NULL OR n.id IS NULL
                   OR (n.amount_paid_gnf < n.amount_due_gnf)
                      <> (o.amount_paid_gnf < o.amount_due_gnf)
                   OR n.due_date <> o.due_date OR n.tenant_id <> o.tenant_id));
    ELSE
        ids := ARRAY(SELECT DISTINCT tenant_id FROM old_rows
                     WHERE amount_paid_gnf < amount_due_gnf);
    END IF;
    IF cardinality(ids) > 0 THEN
        PERFORM tenant_oldest_open_recount(ids);
    END IF;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- payment_allocations: the charges' last payment, punctuality, rows per month.

CREATE OR REPLACE FUNCTION charges_last_paid_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE charges c SET last_paid_at = greatest(c.last_paid_at, k.last_paid_at)
    FROM (SELECT n.charge_id, max(p.occurred_at) AS last_paid_at
          FROM new_rows n JOIN payments p ON p.id = n.payment_id
          GROUP BY n.charge_id) k
    WHERE c.id = k.charge_id AND c.last_paid_at IS DISTINCT FROM greatest(c.last_paid_at, k.last_paid_at);
    RETURN NULL;
END;
$$;

-- The charges whose set of entries changed: all of them for a DELETE; for an UPDATE, those of
-- the rows whose payment or charge changed (an amount alone does not move the last payment).
CREATE OR REPLACE FUNCTION charges_last_paid_recount() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        ids := ARRAY(
            SELECT DISTINCT k.charge_id
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES (n.charge_id), (o.charge_id)) AS k(charge_id)
            WHERE k.charge_id IS NOT NULL
              AND (o.id IS NULL OR n.id IS NULL
                   OR (o.payment_id, o.charge_id) IS DISTINCT FROM (n.payment_id, n.charge_id)));
    ELSE
        ids := ARRAY(SELECT DISTINCT charge_id FROM old_rows);
    END IF;
    IF cardinality(ids) = 0 THEN
        RETURN NULL;
    END IF;
    UPDATE charges c SET last_paid_at = k.last_paid_at
    FROM (SELECT ch.charge_id,
                 (SELECT max(p.occurred_at) FROM payment_allocations pa
                  JOIN payments p ON p.id = pa.payment_id
                  WHERE pa.charge_id = ch.charge_id) AS last_paid_at
          FROM unnest(ids) AS ch(charge_id)) k
    WHERE c.id = k.charge_id AND c.last_paid_at IS DISTINCT FROM k.last_paid_at;
    RETURN NULL;
END;
$$;

DROP TRIGGER payment_allocations_last_paid_update ON payment_allocations;
CREATE TRIGGER payment_allocations_last_paid_update AFTER UPDATE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_last_paid_recount();

CREATE OR REPLACE FUNCTION charges_paid_by_due_added() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT DISTINCT charge_id FROM new_rows);
BEGIN
    IF cardinality(ids) > 0 THEN
        PERFORM charges_paid_by_due_recount(ids);
    END IF;
    RETURN NULL;
END;
$$;

-- For an UPDATE, the charges of the rows whose amount, payment or charge changed (a row whose
-- `outstanding_after_gnf` alone moved counts the same).
CREATE OR REPLACE FUNCTION charges_paid_by_due_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        ids := ARRAY(
            SELECT DISTINCT k.charge_id
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES (n.charge_id), (o.charge_id)) AS k(charge_id)
            WHERE k.charge_id IS NOT NULL
              AND (o.id IS NULL OR n.id IS NULL
                   OR (o.payment_id, o.charge_id, o.amount_gnf)
                      IS DISTINCT FROM (n.payment_id, n.charge_id, n.amount_gnf)));
    ELSE
        ids := ARRAY(SELECT DISTINCT charge_id FROM old_rows);
    END IF;
    IF cardinality(ids) > 0 THEN
        PERFORM charges_paid_by_due_recount(ids);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER payment_allocations_paid_by_due_update ON payment_allocations;
CREATE TRIGGER payment_allocations_paid_by_due_update AFTER UPDATE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_paid_by_due_removed();

CREATE OR REPLACE FUNCTION payment_allocations_paid_months() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parts allocation_part[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        parts := ARRAY(
            SELECT ROW(payment_id, charge_id, amount_gnf)::allocation_part FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose amount, payment or charge changed: the others add +x and -x.
        parts := ARRAY(
            SELECT p.part
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES
                (n.id IS NOT NULL, ROW(n.payment_id, n.charge_id, n.amount_gnf)::allocation_part),
                (o.id IS NOT NULL, ROW(o.payment_id, o.charge_id, -o.amount_gnf)::allocation_part))
                AS p(present, part)
            WHERE p.present
              AND (o.id IS NULL OR n.id IS NULL
                   OR (o.payment_id, o.charge_id, o.amount_gnf)
                      IS DISTINCT FROM (n.payment_id, n.charge_id, n.amount_gnf)));
    ELSE
        parts := ARRAY(
            SELECT ROW(payment_id, charge_id, -amount_gnf)::allocation_part FROM old_rows);
    END IF;
    IF cardinality(parts) > 0 THEN
        PERFORM paid_months_add(parts);
    END IF;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- tenants: a move of site, a change of status (a payment updates only the credit).

CREATE OR REPLACE FUNCTION tenants_open_due_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n USING (id)
                   WHERE o.site_id <> n.site_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
    SELECT m.site_id, c.due_date, tenant_shard(c.tenant_id),
           sum(m.sign * (c.amount_due_gnf - c.amount_paid_gnf))
    FROM (SELECT o.id, o.site_id, -1 AS sign FROM old_rows o JOIN new_rows n USING (id)
          WHERE o.site_id <> n.site_id
          UNION ALL
          SELECT n.id, n.site_id, 1 FROM old_rows o JOIN new_rows n USING (id)
          WHERE o.site_id <> n.site_id) m
    JOIN charges c ON c.tenant_id = m.id
    GROUP BY 1, 2, 3 HAVING sum(m.sign * (c.amount_due_gnf - c.amount_paid_gnf)) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION tenants_site_tenants() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM site_tenants_add(ARRAY(SELECT site_id FROM new_rows WHERE active),
                                 ARRAY(SELECT 1 FROM new_rows WHERE active));
    ELSIF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n USING (id)
                       WHERE (o.active, o.site_id) IS DISTINCT FROM (n.active, n.site_id)) THEN
            RETURN NULL;
        END IF;
        PERFORM site_tenants_add(
            ARRAY(SELECT x.site_id FROM (
                SELECT n.site_id, 1 AS sign FROM new_rows n JOIN old_rows o USING (id)
                WHERE n.active AND (NOT o.active OR n.site_id <> o.site_id)
                UNION ALL
                SELECT o.site_id, -1 FROM new_rows n JOIN old_rows o USING (id)
                WHERE o.active AND (NOT n.active OR n.site_id <> o.site_id)) x ORDER BY x.site_id, x.sign),
            ARRAY(SELECT x.sign FROM (
                SELECT n.site_id, 1 AS sign FROM new_rows n JOIN old_rows o USING (id)
                WHERE n.active AND (NOT o.active OR n.site_id <> o.site_id)
                UNION ALL
                SELECT o.site_id, -1 FROM new_rows n JOIN old_rows o USING (id)
                WHERE o.active AND (NOT n.active OR n.site_id <> o.site_id)) x ORDER BY x.site_id, x.sign));
    ELSE
        PERFORM site_tenants_add(ARRAY(SELECT site_id FROM old_rows WHERE active),
                                 ARRAY(SELECT -1 FROM old_rows WHERE active));
    END IF;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- promises: a payment stores its promise's coverage, often with the same status.

CREATE OR REPLACE FUNCTION promises_promise_days() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parts promise_part[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        parts := ARRAY(
            SELECT ROW(1, tenant_id, status, status_changed_at, amount_gnf)::promise_part
            FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        parts := ARRAY(
            SELECT ROW(1, n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)::promise_part
            FROM new_rows n JOIN old_rows o USING (id)
            WHERE (n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)
                  IS DISTINCT FROM (o.tenant_id, o.status, o.status_changed_at, o.amount_gnf)
            UNION ALL
            SELECT ROW(-1, o.tenant_id, o.status, o.status_changed_at, o.amount_gnf)::promise_part
            FROM new_rows n JOIN old_rows o USING (id)
            WHERE (n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)
                  IS DISTINCT FROM (o.tenant_id, o.status, o.status_changed_at, o.amount_gnf));
    ELSE
        parts := ARRAY(
            SELECT ROW(-1, tenant_id, status, status_changed_at, amount_gnf)::promise_part
            FROM old_rows);
    END IF;
    IF cardinality(parts) > 0 THEN
        PERFORM promise_days_add(parts);
    END IF;
    RETURN NULL;
END;
$$;
