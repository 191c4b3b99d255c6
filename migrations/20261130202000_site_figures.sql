-- Site figures (docs/adr/0011-read-models.md, "Site figures"): what GetSummary, ListSites and
-- GetSite sum per site, kept exact by the statements that change their facts, so that a
-- dashboard read adds up a few rows per site and day instead of every charge, allocation and
-- payment of the company.
--
-- 1. charges.paid_by_due_gnf / paid_on_time: the punctuality of each charge. paid_by_due_gnf is
--    the sum of the charge's allocation rows whose entry occurred by the end of the due date
--    (Africa/Conakry), a reversal's rows dated by the payment it cancels (so a reversed payment
--    never counts, whenever it was reversed); paid_on_time: the charge asks something, is paid
--    in full now and was paid in full by its due date. charges.last_payment_on: the
--    Africa/Conakry day of the latest payment with rows on the charge that no reversal cancels
--    (when a charge is paid in full, the day it was completed; ListGoodPayers' days early).
-- 2. due_days (site, due date, shard): charges, amounts due and paid, charges paid on time,
--    charges with something outstanding.
-- 3. tenant_oldest_open (tenant) and arrears_oldest (site, due date, shard): the due date of
--    each tenant's oldest charge with something outstanding, and how many tenants per site
--    have their oldest there.
-- 4. collected_days (site, day, shard): money received per site and Africa/Conakry day,
--    payments minus reversals, by the entry's site and day.
-- 5. paid_months (site, due date, month, shard): allocation rows per charge due date and
--    Africa/Conakry month of the entry (each entry on its own day, reversals included), for
--    the arrears at the end of past months.
-- 6. promise_days (site, status, day, shard): promises per status and Africa/Conakry day of
--    their last status change, count and sum; site_tenants (site): active tenants.
--
-- All are kept by statement-level triggers with transition tables (one statement per writing
-- statement, whatever its row count), in key order before ON CONFLICT, so the ledger replay,
-- the seeds' COPY and plain SQL keep them alike. A tenant's rows go to tenant_shard(tenant), so
-- concurrent payments of one site update different rows.

-- ---------------------------------------------------------------------------------------------
-- 1. Punctuality of each charge.

ALTER TABLE charges ADD COLUMN paid_by_due_gnf bigint NOT NULL DEFAULT 0;

UPDATE charges c SET paid_by_due_gnf = k.by_due
FROM (SELECT pa.charge_id, sum(pa.amount_gnf)::bigint AS by_due
      FROM payment_allocations pa
      JOIN charges x ON x.id = pa.charge_id
      JOIN payments p ON p.id = pa.payment_id
      LEFT JOIN payments o ON o.id = p.reverses_payment_id
      WHERE (coalesce(o.occurred_at, p.occurred_at) AT TIME ZONE 'Africa/Conakry')::date
            <= x.due_date
      GROUP BY pa.charge_id) k
WHERE c.id = k.charge_id;

ALTER TABLE charges ADD COLUMN last_payment_on date;

UPDATE charges c SET last_payment_on = k.last_on
FROM (SELECT pa.charge_id, max((p.occurred_at AT TIME ZONE 'Africa/Conakry')::date) AS last_on
      FROM payment_allocations pa
      JOIN payments p ON p.id = pa.payment_id
      WHERE p.kind = 'payment'
        AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)
      GROUP BY pa.charge_id) k
WHERE c.id = k.charge_id;

ALTER TABLE charges ADD COLUMN paid_on_time boolean GENERATED ALWAYS AS (
    amount_due_gnf > 0 AND amount_paid_gnf = amount_due_gnf AND paid_by_due_gnf >= amount_due_gnf
) STORED;

-- The charges whose rows a statement on payment_allocations touched are read again from their
-- rows (a charge has a few), in one join (a bulk load runs it on tables not analysed yet).
CREATE FUNCTION charges_paid_by_due_recount(charge_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE charges c SET paid_by_due_gnf = k.by_due, last_payment_on = k.last_on
    FROM (SELECT x.id,
                 coalesce(sum(pa.amount_gnf) FILTER (
                     WHERE (coalesce(o.occurred_at, p.occurred_at)
                            AT TIME ZONE 'Africa/Conakry')::date <= x.due_date), 0)::bigint
                     AS by_due,
                 max((p.occurred_at AT TIME ZONE 'Africa/Conakry')::date) FILTER (
                     WHERE p.kind = 'payment' AND r.id IS NULL) AS last_on
          FROM (SELECT DISTINCT unnest(charge_ids) AS id) u
          JOIN charges x ON x.id = u.id
          LEFT JOIN payment_allocations pa ON pa.charge_id = x.id
          LEFT JOIN payments p ON p.id = pa.payment_id
          LEFT JOIN payments o ON o.id = p.reverses_payment_id
          LEFT JOIN payments r ON r.reverses_payment_id = p.id
          GROUP BY x.id) k
    WHERE c.id = k.id
      AND (c.paid_by_due_gnf, c.last_payment_on) IS DISTINCT FROM (k.by_due, k.last_on);
$$;

CREATE FUNCTION charges_paid_by_due_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM charges_paid_by_due_recount(ARRAY(SELECT DISTINCT charge_id FROM new_rows));
    RETURN NULL;
END;
$$;

CREATE FUNCTION charges_paid_by_due_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM charges_paid_by_due_recount(ARRAY(SELECT DISTINCT charge_id FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE TRIGGER payment_allocations_paid_by_due_insert AFTER INSERT ON payment_allocations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_paid_by_due_added();
CREATE TRIGGER payment_allocations_paid_by_due_update AFTER UPDATE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_paid_by_due_removed();
CREATE TRIGGER payment_allocations_paid_by_due_delete AFTER DELETE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_paid_by_due_removed();

-- ---------------------------------------------------------------------------------------------
-- 2. Charges per site and due date.

CREATE TABLE due_days (
    site_id       uuid NOT NULL REFERENCES sites (id),
    due_date      date NOT NULL,
    shard         smallint NOT NULL,
    -- Charges asking something (amount due > 0).
    charges       bigint NOT NULL,
    -- Sum of the amounts due, GNF.
    due_gnf       bigint NOT NULL,
    -- Sum paid on them now, net of reversals, GNF (each within 0..=due).
    paid_gnf      bigint NOT NULL,
    -- Charges paid in full by the end of their due date (charges.paid_on_time).
    on_time       bigint NOT NULL,
    -- Charges with something outstanding.
    open_charges  bigint NOT NULL,
    PRIMARY KEY (site_id, due_date, shard)
);

INSERT INTO due_days (site_id, due_date, shard, charges, due_gnf, paid_gnf, on_time, open_charges)
SELECT t.site_id, c.due_date, tenant_shard(c.tenant_id),
       count(*) FILTER (WHERE c.amount_due_gnf > 0), sum(c.amount_due_gnf), sum(c.amount_paid_gnf),
       count(*) FILTER (WHERE c.paid_on_time),
       count(*) FILTER (WHERE c.amount_paid_gnf < c.amount_due_gnf)
FROM charges c JOIN tenants t ON t.id = c.tenant_id
GROUP BY 1, 2, 3;

-- One charge's part in due_days, signed: +1 added, -1 removed.
CREATE TYPE charge_part AS (
    sign             int,
    tenant_id        uuid,
    due_date         date,
    amount_due_gnf   bigint,
    amount_paid_gnf  bigint,
    paid_on_time     boolean
);

-- Adds signed parts at the tenants' current sites (cells whose sums do not change untouched).
CREATE FUNCTION due_days_add(parts charge_part[]) RETURNS void
LANGUAGE sql AS $$
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
$$;

CREATE FUNCTION charges_due_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
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
        PERFORM due_days_add(ARRAY(
            SELECT ROW(1, n.tenant_id, n.due_date, n.amount_due_gnf, n.amount_paid_gnf,
                       n.paid_on_time)::charge_part FROM new_rows n
            UNION ALL
            SELECT ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                       o.paid_on_time)::charge_part FROM old_rows o));
    ELSE
        PERFORM due_days_add(ARRAY(
            SELECT ROW(-1, o.tenant_id, o.due_date, o.amount_due_gnf, o.amount_paid_gnf,
                       o.paid_on_time)::charge_part FROM old_rows o));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER charges_due_days_insert AFTER INSERT ON charges
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_due_days();
CREATE TRIGGER charges_due_days_update AFTER UPDATE ON charges
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_due_days();
CREATE TRIGGER charges_due_days_delete AFTER DELETE ON charges
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_due_days();

-- ---------------------------------------------------------------------------------------------
-- 3. Each tenant's oldest charge with something outstanding, and the count per site and day.

CREATE TABLE tenant_oldest_open (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
    site_id     uuid NOT NULL REFERENCES sites (id),
    oldest_due  date NOT NULL
);

-- A site's tenants in arrears (GetSite's top debtors).
CREATE INDEX tenant_oldest_open_site_idx ON tenant_oldest_open (site_id, oldest_due);

CREATE TABLE arrears_oldest (
    site_id   uuid NOT NULL REFERENCES sites (id),
    due_date  date NOT NULL,
    shard     smallint NOT NULL,
    -- Tenants of the site (of this shard) whose oldest open charge falls due that day.
    tenants   bigint NOT NULL,
    PRIMARY KEY (site_id, due_date, shard)
);

INSERT INTO tenant_oldest_open (tenant_id, site_id, oldest_due)
SELECT c.tenant_id, t.site_id, min(c.due_date)
FROM charges c JOIN tenants t ON t.id = c.tenant_id
WHERE c.amount_paid_gnf < c.amount_due_gnf
GROUP BY c.tenant_id, t.site_id;

INSERT INTO arrears_oldest (site_id, due_date, shard, tenants)
SELECT site_id, oldest_due, tenant_shard(tenant_id), count(*)
FROM tenant_oldest_open GROUP BY 1, 2, 3;

-- The tenants of the charges a statement wrote: their oldest open charge read again from their
-- charges (index charges_tenant_period_key), the per-tenant row and the per-site counts moved.
-- Set-based joins rather than a subquery per row: a bulk load (the seeds) runs them on tables
-- not analysed yet in its transaction.
CREATE FUNCTION tenant_oldest_open_recount(tenant_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    WITH fresh AS (
        SELECT t.id AS tenant_id, t.site_id,
               min(c.due_date) FILTER (WHERE c.amount_paid_gnf < c.amount_due_gnf) AS oldest
        FROM (SELECT DISTINCT unnest(tenant_ids) AS id) u
        JOIN tenants t ON t.id = u.id
        LEFT JOIN charges c ON c.tenant_id = t.id
        GROUP BY t.id, t.site_id
    ), prev AS (
        SELECT o.tenant_id, o.site_id, o.oldest_due FROM tenant_oldest_open o
        JOIN (SELECT DISTINCT unnest(tenant_ids) AS id) u ON u.id = o.tenant_id
    ), changed AS (
        SELECT f.tenant_id, p.site_id AS old_site, p.oldest_due AS old_due,
               f.site_id AS new_site, f.oldest AS new_due
        FROM fresh f LEFT JOIN prev p USING (tenant_id)
        WHERE (p.oldest_due, p.site_id) IS DISTINCT FROM (f.oldest, f.site_id)
          AND NOT (p.tenant_id IS NULL AND f.oldest IS NULL)
    ), removed AS (
        DELETE FROM tenant_oldest_open o USING changed ch
        WHERE o.tenant_id = ch.tenant_id AND ch.new_due IS NULL
    ), kept AS (
        INSERT INTO tenant_oldest_open AS o (tenant_id, site_id, oldest_due)
        SELECT tenant_id, new_site, new_due FROM changed WHERE new_due IS NOT NULL
        ORDER BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET site_id = excluded.site_id,
                                              oldest_due = excluded.oldest_due
    )
    INSERT INTO arrears_oldest AS a (site_id, due_date, shard, tenants)
    SELECT site_id, due_date, shard, sum(n)
    FROM (SELECT old_site AS site_id, old_due AS due_date, tenant_shard(tenant_id) AS shard, -1 AS n
          FROM changed WHERE old_due IS NOT NULL
          UNION ALL
          SELECT new_site, new_due, tenant_shard(tenant_id), 1
          FROM changed WHERE new_due IS NOT NULL) d
    GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (site_id, due_date, shard) DO UPDATE SET tenants = a.tenants + excluded.tenants;
$$;

CREATE FUNCTION charges_oldest_open() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM tenant_oldest_open_recount(ARRAY(
            SELECT DISTINCT tenant_id FROM new_rows WHERE amount_paid_gnf < amount_due_gnf));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM tenant_oldest_open_recount(ARRAY(
            SELECT DISTINCT n.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.amount_paid_gnf < n.amount_due_gnf) <> (o.amount_paid_gnf < o.amount_due_gnf)
               OR n.due_date <> o.due_date OR n.tenant_id <> o.tenant_id
            UNION SELECT o.tenant_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.tenant_id <> o.tenant_id));
    ELSE
        PERFORM tenant_oldest_open_recount(ARRAY(
            SELECT DISTINCT tenant_id FROM old_rows WHERE amount_paid_gnf < amount_due_gnf));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER charges_oldest_open_insert AFTER INSERT ON charges
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_oldest_open();
CREATE TRIGGER charges_oldest_open_update AFTER UPDATE ON charges
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_oldest_open();
CREATE TRIGGER charges_oldest_open_delete AFTER DELETE ON charges
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_oldest_open();

-- ---------------------------------------------------------------------------------------------
-- 4. Money received per site and day.

CREATE TABLE collected_days (
    site_id        uuid NOT NULL REFERENCES sites (id),
    day            date NOT NULL,
    shard          smallint NOT NULL,
    -- Payments minus reversals that occurred that Africa/Conakry day on the site, GNF.
    collected_gnf  bigint NOT NULL,
    PRIMARY KEY (site_id, day, shard)
);
-- The company's days (GetSummary of every site).
CREATE INDEX collected_days_day_idx ON collected_days (day);

INSERT INTO collected_days (site_id, day, shard, collected_gnf)
SELECT site_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date, tenant_shard(tenant_id),
       sum(CASE WHEN kind = 'payment' THEN amount_gnf ELSE -amount_gnf END)
FROM payments GROUP BY 1, 2, 3;

-- Payments and reversals are append-only (payments_append_only): inserts only.
CREATE FUNCTION payments_collected_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO collected_days AS d (site_id, day, shard, collected_gnf)
    SELECT site_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date, tenant_shard(tenant_id),
           sum(CASE WHEN kind = 'payment' THEN amount_gnf ELSE -amount_gnf END)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (site_id, day, shard) DO UPDATE
        SET collected_gnf = d.collected_gnf + excluded.collected_gnf;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payments_collected_days AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payments_collected_days();

-- ---------------------------------------------------------------------------------------------
-- 5. Allocation rows per site, charge due date and month of the entry.

CREATE TABLE paid_months (
    site_id   uuid NOT NULL REFERENCES sites (id),
    due_date  date NOT NULL,
    -- First day of the Africa/Conakry month the entry (payment or reversal) occurred in.
    month     date NOT NULL,
    shard     smallint NOT NULL,
    -- Sum of the allocation rows (reversal rows negative), GNF.
    paid_gnf  bigint NOT NULL,
    PRIMARY KEY (site_id, due_date, month, shard)
);

INSERT INTO paid_months (site_id, due_date, month, shard, paid_gnf)
SELECT t.site_id, c.due_date,
       date_trunc('month', p.occurred_at AT TIME ZONE 'Africa/Conakry')::date,
       tenant_shard(c.tenant_id), sum(pa.amount_gnf)
FROM payment_allocations pa
JOIN payments p ON p.id = pa.payment_id
JOIN charges c ON c.id = pa.charge_id
JOIN tenants t ON t.id = c.tenant_id
GROUP BY 1, 2, 3, 4;

-- One allocation row's part in paid_months, signed.
CREATE TYPE allocation_part AS (payment_id uuid, charge_id bigint, amount_gnf bigint);

CREATE FUNCTION paid_months_add(parts allocation_part[]) RETURNS void
LANGUAGE sql AS $$
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
$$;

CREATE FUNCTION payment_allocations_paid_months() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM paid_months_add(ARRAY(
            SELECT ROW(payment_id, charge_id, amount_gnf)::allocation_part FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM paid_months_add(ARRAY(
            SELECT ROW(payment_id, charge_id, amount_gnf)::allocation_part FROM new_rows
            UNION ALL
            SELECT ROW(payment_id, charge_id, -amount_gnf)::allocation_part FROM old_rows));
    ELSE
        PERFORM paid_months_add(ARRAY(
            SELECT ROW(payment_id, charge_id, -amount_gnf)::allocation_part FROM old_rows));
    END IF;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- 6. Promises per site, status and day of their last status change; active tenants per site.

CREATE TABLE promise_days (
    site_id     uuid NOT NULL REFERENCES sites (id),
    status      text NOT NULL,
    -- Africa/Conakry day of status_changed_at; 1970-01-01 when it never changed.
    changed_on  date NOT NULL,
    shard       smallint NOT NULL,
    promises    bigint NOT NULL,
    amount_gnf  bigint NOT NULL,
    PRIMARY KEY (site_id, status, changed_on, shard)
);
CREATE INDEX promise_days_status_idx ON promise_days (status, changed_on);

-- The day a promise's status last changed, as promise_days keys it.
CREATE FUNCTION promise_changed_on(timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(($1 AT TIME ZONE 'Africa/Conakry')::date, date '1970-01-01')
$$;

INSERT INTO promise_days (site_id, status, changed_on, shard, promises, amount_gnf)
SELECT t.site_id, pr.status, promise_changed_on(pr.status_changed_at), tenant_shard(pr.tenant_id),
       count(*), sum(pr.amount_gnf)
FROM promises pr JOIN tenants t ON t.id = pr.tenant_id
GROUP BY 1, 2, 3, 4;

-- One promise's part in promise_days, signed.
CREATE TYPE promise_part AS (sign int, tenant_id uuid, status text, changed_at timestamptz,
                             amount_gnf bigint);

CREATE FUNCTION promise_days_add(parts promise_part[]) RETURNS void
LANGUAGE sql AS $$
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
$$;

CREATE FUNCTION promises_promise_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM promise_days_add(ARRAY(
            SELECT ROW(1, tenant_id, status, status_changed_at, amount_gnf)::promise_part
            FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM promise_days_add(ARRAY(
            SELECT ROW(1, n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)::promise_part
            FROM new_rows n JOIN old_rows o USING (id)
            WHERE (n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)
                  IS DISTINCT FROM (o.tenant_id, o.status, o.status_changed_at, o.amount_gnf)
            UNION ALL
            SELECT ROW(-1, o.tenant_id, o.status, o.status_changed_at, o.amount_gnf)::promise_part
            FROM new_rows n JOIN old_rows o USING (id)
            WHERE (n.tenant_id, n.status, n.status_changed_at, n.amount_gnf)
                  IS DISTINCT FROM (o.tenant_id, o.status, o.status_changed_at, o.amount_gnf)));
    ELSE
        PERFORM promise_days_add(ARRAY(
            SELECT ROW(-1, tenant_id, status, status_changed_at, amount_gnf)::promise_part
            FROM old_rows));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER promises_promise_days_insert AFTER INSERT ON promises
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION promises_promise_days();
CREATE TRIGGER promises_promise_days_update AFTER UPDATE ON promises
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION promises_promise_days();
CREATE TRIGGER promises_promise_days_delete AFTER DELETE ON promises
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION promises_promise_days();

CREATE TABLE site_tenants (
    site_id  uuid PRIMARY KEY REFERENCES sites (id),
    -- Active tenants of the site.
    active   bigint NOT NULL
);

INSERT INTO site_tenants (site_id, active)
SELECT site_id, count(*) FROM tenants WHERE active GROUP BY 1;

CREATE FUNCTION site_tenants_add(deltas uuid[], signs int[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO site_tenants AS s (site_id, active)
    SELECT d.site_id, sum(d.sign) FROM unnest(deltas, signs) d(site_id, sign)
    GROUP BY 1 HAVING sum(d.sign) <> 0 ORDER BY 1
    ON CONFLICT (site_id) DO UPDATE SET active = s.active + excluded.active;
$$;

CREATE FUNCTION tenants_site_tenants() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM site_tenants_add(ARRAY(SELECT site_id FROM new_rows WHERE active),
                                 ARRAY(SELECT 1 FROM new_rows WHERE active));
    ELSIF TG_OP = 'UPDATE' THEN
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

CREATE TRIGGER tenants_site_tenants_insert AFTER INSERT ON tenants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_site_tenants();
CREATE TRIGGER tenants_site_tenants_update AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_site_tenants();
CREATE TRIGGER tenants_site_tenants_delete AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_site_tenants();

-- ---------------------------------------------------------------------------------------------
-- A tenant moved to another site takes its figures along.

CREATE FUNCTION tenants_site_figures_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    moved uuid[];
BEGIN
    moved := ARRAY(SELECT n.id FROM old_rows o JOIN new_rows n USING (id)
                   WHERE o.site_id <> n.site_id ORDER BY n.id);
    IF cardinality(moved) = 0 THEN
        RETURN NULL;
    END IF;
    -- Out of the old sites (their site in old_rows), into the new ones (the tenants' rows now).
    INSERT INTO due_days AS d (site_id, due_date, shard, charges, due_gnf, paid_gnf, on_time,
                               open_charges)
    SELECT o.site_id, c.due_date, tenant_shard(c.tenant_id),
           -count(*) FILTER (WHERE c.amount_due_gnf > 0), -sum(c.amount_due_gnf),
           -sum(c.amount_paid_gnf), -count(*) FILTER (WHERE c.paid_on_time),
           -count(*) FILTER (WHERE c.amount_paid_gnf < c.amount_due_gnf)
    FROM old_rows o
    JOIN unnest(moved) m(id) ON m.id = o.id
    JOIN charges c ON c.tenant_id = o.id
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (site_id, due_date, shard) DO UPDATE SET
        charges = d.charges + excluded.charges, due_gnf = d.due_gnf + excluded.due_gnf,
        paid_gnf = d.paid_gnf + excluded.paid_gnf, on_time = d.on_time + excluded.on_time,
        open_charges = d.open_charges + excluded.open_charges;
    PERFORM due_days_add(ARRAY(
        SELECT ROW(1, c.tenant_id, c.due_date, c.amount_due_gnf, c.amount_paid_gnf,
                   c.paid_on_time)::charge_part
        FROM unnest(moved) m(id) JOIN charges c ON c.tenant_id = m.id));

    INSERT INTO paid_months AS m (site_id, due_date, month, shard, paid_gnf)
    SELECT o.site_id, c.due_date,
           date_trunc('month', p.occurred_at AT TIME ZONE 'Africa/Conakry')::date,
           tenant_shard(c.tenant_id), -sum(pa.amount_gnf)
    FROM old_rows o
    JOIN unnest(moved) m(id) ON m.id = o.id
    JOIN charges c ON c.tenant_id = o.id
    JOIN payment_allocations pa ON pa.charge_id = c.id
    JOIN payments p ON p.id = pa.payment_id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, due_date, month, shard) DO UPDATE SET paid_gnf = m.paid_gnf + excluded.paid_gnf;
    PERFORM paid_months_add(ARRAY(
        SELECT ROW(pa.payment_id, pa.charge_id, pa.amount_gnf)::allocation_part
        FROM unnest(moved) m(id)
        JOIN charges c ON c.tenant_id = m.id
        JOIN payment_allocations pa ON pa.charge_id = c.id));

    INSERT INTO promise_days AS d (site_id, status, changed_on, shard, promises, amount_gnf)
    SELECT o.site_id, pr.status, promise_changed_on(pr.status_changed_at),
           tenant_shard(pr.tenant_id), -count(*), -sum(pr.amount_gnf)
    FROM old_rows o
    JOIN unnest(moved) m(id) ON m.id = o.id
    JOIN promises pr ON pr.tenant_id = o.id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, status, changed_on, shard) DO UPDATE
        SET promises = d.promises + excluded.promises,
            amount_gnf = d.amount_gnf + excluded.amount_gnf;
    PERFORM promise_days_add(ARRAY(
        SELECT ROW(1, pr.tenant_id, pr.status, pr.status_changed_at, pr.amount_gnf)::promise_part
        FROM unnest(moved) m(id) JOIN promises pr ON pr.tenant_id = m.id));

    PERFORM tenant_oldest_open_recount(moved);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_site_figures_moved AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_site_figures_moved();

CREATE TRIGGER payment_allocations_paid_months_insert AFTER INSERT ON payment_allocations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_paid_months();
CREATE TRIGGER payment_allocations_paid_months_update AFTER UPDATE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_paid_months();
CREATE TRIGGER payment_allocations_paid_months_delete AFTER DELETE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_paid_months();

-- ---------------------------------------------------------------------------------------------

ANALYZE charges;
ANALYZE due_days;
ANALYZE tenant_oldest_open;
ANALYZE arrears_oldest;
ANALYZE collected_days;
ANALYZE paid_months;
ANALYZE promise_days;
ANALYZE site_tenants;
