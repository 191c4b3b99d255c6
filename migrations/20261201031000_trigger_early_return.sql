-- Read-model triggers return at once when their statement changed nothing they count.
--
-- Statement-level triggers fire even when no row changed (an UPDATE matching no row, or one
-- that only moves `last_paid_at` or `paid_by_due_gnf`), and several of them update `charges`
-- again, which fires the `charges` triggers once more. Each function below now checks its
-- transition tables first and returns when there is nothing to add; the arithmetic of what they
-- add is unchanged, so the read models hold the same rows as before.

CREATE OR REPLACE FUNCTION charges_due_days() RETURNS trigger LANGUAGE plpgsql AS $$
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
    ELSIF TG_OP = 'UPDATE' THEN
        -- A row whose counted fields are unchanged adds +1 and -1 of the same part: leave both
        -- out. A row without an identical counterpart (fields or id changed) is kept.
        DECLARE
            parts charge_part[] := ARRAY(
                SELECT ROW(1, n.tenant_id, n.due_date, n.amount_due_gnf, n.amount_paid_gnf,
                           n.paid_on_time)::charge_part
                FROM new_rows n
                WHERE NOT EXISTS (
                    SELECT 1 FROM old_rows o
                    WHERE o.id = n.id
                      AND (o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                           o.paid_on_time)
                          IS NOT DISTINCT FROM
                          (n.tenant_id, n.due_date, n.amount_due_gnf, n.amount_paid_gnf,
                           n.paid_on_time))
                UNION ALL
                SELECT ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                           o.paid_on_time)::charge_part
                FROM old_rows o
                WHERE NOT EXISTS (
                    SELECT 1 FROM new_rows n
                    WHERE n.id = o.id
                      AND (o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                           o.paid_on_time)
                          IS NOT DISTINCT FROM
                          (n.tenant_id, n.due_date, n.amount_due_gnf, n.amount_paid_gnf,
                           n.paid_on_time)));
        BEGIN
            IF cardinality(parts) > 0 THEN
                PERFORM due_days_add(parts);
            END IF;
        END;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
        PERFORM due_days_add(ARRAY(
            SELECT ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                       o.paid_on_time)::charge_part FROM old_rows o));
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION charges_oldest_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT DISTINCT tenant_id FROM new_rows
                     WHERE amount_paid_gnf < amount_due_gnf);
    ELSIF TG_OP = 'UPDATE' THEN
        ids := ARRAY(
            SELECT DISTINCT n.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.amount_paid_gnf < n.amount_due_gnf) <> (o.amount_paid_gnf < o.amount_due_gnf)
               OR n.due_date <> o.due_date OR n.tenant_id <> o.tenant_id
            UNION SELECT o.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.tenant_id <> o.tenant_id);
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

CREATE OR REPLACE FUNCTION charges_open_due() RETURNS trigger LANGUAGE plpgsql AS $$
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
            SELECT 1 FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            WHERE (o.amount_due_gnf - o.amount_paid_gnf, o.due_date, o.tenant_id)
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

CREATE OR REPLACE FUNCTION charges_last_paid_added() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION charges_paid_by_due_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT DISTINCT charge_id FROM new_rows);
BEGIN
    IF cardinality(ids) > 0 THEN
        PERFORM charges_paid_by_due_recount(ids);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION charges_paid_by_due_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT DISTINCT charge_id FROM old_rows);
BEGIN
    IF cardinality(ids) > 0 THEN
        PERFORM charges_paid_by_due_recount(ids);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION payment_allocations_paid_months() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parts allocation_part[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        parts := ARRAY(
            SELECT ROW(payment_id, charge_id, amount_gnf)::allocation_part FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        parts := ARRAY(
            SELECT ROW(payment_id, charge_id, amount_gnf)::allocation_part FROM new_rows
            UNION ALL
            SELECT ROW(payment_id, charge_id, -amount_gnf)::allocation_part FROM old_rows);
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
