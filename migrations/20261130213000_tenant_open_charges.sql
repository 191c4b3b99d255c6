-- Read model 4 (docs/adr/0011-read-models.md): each tenant's open charges summed up in five
-- columns, so that its arrears on any day are read from one row without reading its charges
-- (the arrears map reads the 45,000 tenants in arrears of a 100,000-tenant company at once).
-- The rule that reads them is `domain::arrears::OpenCharges::owed_on`; `store::markers` holds
-- its SQL mirror.
--
-- An open charge is one with amount_paid_gnf < amount_due_gnf; its open amount is the
-- difference (> 0). Per tenant:
--   open_gnf             Σ open amount of its open charges (0: none);
--   open_first_due       the earliest due date of its open charges;
--   open_last_due        the latest;
--   open_last_gnf        Σ open amount of its open charges due on open_last_due;
--   open_before_last_due the latest due date of its open charges due before open_last_due.
-- The dates are NULL when the tenant has no open charge (open_before_last_due also when all
-- its open charges fall due on one day).
--
-- A table of its own rather than columns of tenants: an update of a tenants row recomputes its
-- generated search columns (to_tsvector, unaccent) and, once an indexed column changes, writes
-- all ten of its indexes; a payment would pay that every time. The tenant's site, status and
-- home are copied in so that the map reads this table's index alone.

CREATE TABLE tenant_open (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- Copies of the tenant's (kept by tenants_open_copy below).
    site_id              uuid NOT NULL,
    active               boolean NOT NULL,
    home_latitude        double precision,
    home_longitude       double precision,
    open_gnf             bigint NOT NULL,
    open_first_due       date,
    open_last_due        date,
    open_last_gnf        bigint NOT NULL,
    open_before_last_due date
);

-- The five figures of some tenants, recomputed from their open charges (through the partial
-- index charges_arrears_tenant_period_idx), with the tenant's copied columns: one row per
-- tenant of `ids` (zeros and NULLs for a tenant without open charges).
CREATE FUNCTION tenant_open_of(ids uuid[]) RETURNS SETOF tenant_open
LANGUAGE sql STABLE AS $$
    SELECT t.id, t.site_id, t.active, t.home_latitude, t.home_longitude,
           coalesce(sum(d.gnf), 0)::bigint,
           min(d.due_date),
           max(d.due_date),
           coalesce((array_agg(d.gnf ORDER BY d.due_date DESC))[1], 0)::bigint,
           (array_agg(d.due_date ORDER BY d.due_date DESC))[2]
    FROM tenants t
    LEFT JOIN LATERAL (
        SELECT c.due_date, sum(c.amount_due_gnf - c.amount_paid_gnf) AS gnf
        FROM charges c
        WHERE c.tenant_id = t.id AND c.amount_paid_gnf < c.amount_due_gnf
        GROUP BY c.due_date
    ) d ON true
    WHERE t.id = ANY (ids)
    GROUP BY t.id
$$;

-- Backfill: the tenants with open charges (the others get their row with their first charge
-- written).
INSERT INTO tenant_open
SELECT t.id, t.site_id, t.active, t.home_latitude, t.home_longitude, k.open_gnf,
       k.open_first_due, k.open_last_due, k.open_last_gnf, k.open_before_last_due
FROM (SELECT d.tenant_id,
             sum(d.gnf)::bigint AS open_gnf,
             min(d.due_date) AS open_first_due,
             max(d.due_date) AS open_last_due,
             (array_agg(d.gnf ORDER BY d.due_date DESC))[1]::bigint AS open_last_gnf,
             (array_agg(d.due_date ORDER BY d.due_date DESC))[2] AS open_before_last_due
      FROM (SELECT c.tenant_id, c.due_date, sum(c.amount_due_gnf - c.amount_paid_gnf) AS gnf
            FROM charges c WHERE c.amount_paid_gnf < c.amount_due_gnf
            GROUP BY 1, 2) d
      GROUP BY d.tenant_id) k
JOIN tenants t ON t.id = k.tenant_id;

-- Recomputes the tenants of the charges one statement wrote. Their tenants rows are locked
-- first, in id order (two statements touching the same tenants never wait on each other in
-- opposite orders), and only then read: under READ COMMITTED the recount's snapshot comes after
-- any other writer of these tenants' charges (or of the copied columns) has committed, so no
-- write is lost.
CREATE FUNCTION charges_tenant_open() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.tenant_id ORDER BY n.tenant_id) INTO ids FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only the rows whose open amount, due date or tenant changed (both tenants of a move).
        SELECT array_agg(DISTINCT k.tenant_id ORDER BY k.tenant_id) INTO ids
        FROM old_rows o JOIN new_rows n USING (id)
        CROSS JOIN LATERAL unnest(ARRAY[o.tenant_id, n.tenant_id]) AS k(tenant_id)
        WHERE (o.amount_due_gnf - o.amount_paid_gnf, o.due_date, o.tenant_id)
              IS DISTINCT FROM (n.amount_due_gnf - n.amount_paid_gnf, n.due_date, n.tenant_id);
    ELSE
        SELECT array_agg(DISTINCT o.tenant_id ORDER BY o.tenant_id) INTO ids FROM old_rows o;
    END IF;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM tenants t WHERE t.id = ANY (ids) ORDER BY t.id FOR NO KEY UPDATE;
    INSERT INTO tenant_open AS o
    SELECT * FROM tenant_open_of(ids) k ORDER BY k.tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
    SET open_gnf = excluded.open_gnf, open_first_due = excluded.open_first_due,
        open_last_due = excluded.open_last_due, open_last_gnf = excluded.open_last_gnf,
        open_before_last_due = excluded.open_before_last_due
    WHERE (o.open_gnf, o.open_first_due, o.open_last_due, o.open_last_gnf, o.open_before_last_due)
          IS DISTINCT FROM
          (excluded.open_gnf, excluded.open_first_due, excluded.open_last_due,
           excluded.open_last_gnf, excluded.open_before_last_due);
    RETURN NULL;
END;
$$;

CREATE TRIGGER charges_tenant_open_insert AFTER INSERT ON charges
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_tenant_open();
CREATE TRIGGER charges_tenant_open_update AFTER UPDATE ON charges
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_tenant_open();
CREATE TRIGGER charges_tenant_open_delete AFTER DELETE ON charges
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_tenant_open();

-- A tenant's site, status or home changed: its copy follows (one primary-key probe per updated
-- tenant; nothing is written when none of them changed).
CREATE FUNCTION tenants_open_copy() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenant_open o
    SET site_id = n.site_id, active = n.active,
        home_latitude = n.home_latitude, home_longitude = n.home_longitude
    FROM new_rows n
    WHERE o.tenant_id = n.id
      AND (o.site_id, o.active, o.home_latitude, o.home_longitude)
          IS DISTINCT FROM (n.site_id, n.active, n.home_latitude, n.home_longitude);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_open_copy AFTER UPDATE ON tenants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_open_copy();

-- The tenants with open charges that the map may draw, by home. A street's box reads a few
-- entries of it (latitude range, then longitude inside the index); a whole city is about half
-- of this narrow table, which the planner then reads in sequence. The box is given to the
-- planner as ranges of the two columns, whose statistics it knows (a GiST `<@ box` condition
-- is estimated at a fixed fraction whatever the box, which made it read a whole city through
-- the index).
CREATE INDEX tenant_open_home_idx ON tenant_open (home_latitude, home_longitude)
    WHERE active AND open_gnf > 0 AND home_latitude IS NOT NULL;
-- The few without a known home, counted beside the map.
CREATE INDEX tenant_open_unlocated_idx ON tenant_open (open_first_due)
    WHERE active AND open_gnf > 0 AND home_latitude IS NULL;

ANALYZE tenant_open;
