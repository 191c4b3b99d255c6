-- Read models (docs/adr/0011-read-models.md): figures the reads used to derive from the whole
-- ledger at every call, kept exact by the statements that change their facts, so that a read
-- costs the same at 100,000 tenants as at 2,000.
--
-- 1. charges.last_paid_at: when the last entry counted on the charge occurred
--    (max(payments.occurred_at) over the charge's allocation rows, reversal entries included).
-- 2. open_due: what is still to pay, per site, due date and tenant shard (the current
--    outstanding of the charges falling due that day).
-- 3. tenants.name_norm / unit_norm: the search columns, normalised once at write (phone numbers
--    are matched through search_vector, which holds their digit forms already).
--
-- All of them are kept by statement-level triggers (one statement per writing statement, with
-- transition tables), so the ledger replay, the seeds' COPY and plain SQL keep them alike.

-- ---------------------------------------------------------------------------------------------
-- 1. The last payment counted on each charge.

ALTER TABLE charges ADD COLUMN last_paid_at timestamptz;

UPDATE charges c SET last_paid_at = k.last_paid_at
FROM (SELECT pa.charge_id, max(p.occurred_at) AS last_paid_at
      FROM payment_allocations pa JOIN payments p ON p.id = pa.payment_id
      GROUP BY pa.charge_id) k
WHERE c.id = k.charge_id;

-- Rows added: the charge's last payment is the later of what it was and the new rows'.
CREATE FUNCTION charges_last_paid_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE charges c SET last_paid_at = greatest(c.last_paid_at, k.last_paid_at)
    FROM (SELECT n.charge_id, max(p.occurred_at) AS last_paid_at
          FROM new_rows n JOIN payments p ON p.id = n.payment_id
          GROUP BY n.charge_id) k
    WHERE c.id = k.charge_id AND c.last_paid_at IS DISTINCT FROM greatest(c.last_paid_at, k.last_paid_at);
    RETURN NULL;
END;
$$;

-- Rows removed or changed: the charges they were on are read again from their remaining rows.
CREATE FUNCTION charges_last_paid_recount() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE charges c SET last_paid_at = k.last_paid_at
    FROM (SELECT ch.charge_id,
                 (SELECT max(p.occurred_at) FROM payment_allocations pa
                  JOIN payments p ON p.id = pa.payment_id
                  WHERE pa.charge_id = ch.charge_id) AS last_paid_at
          FROM (SELECT DISTINCT charge_id FROM old_rows) ch) k
    WHERE c.id = k.charge_id AND c.last_paid_at IS DISTINCT FROM k.last_paid_at;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payment_allocations_last_paid_insert AFTER INSERT ON payment_allocations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_last_paid_added();
CREATE TRIGGER payment_allocations_last_paid_update AFTER UPDATE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_last_paid_recount();
CREATE TRIGGER payment_allocations_last_paid_delete AFTER DELETE ON payment_allocations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_last_paid_recount();

-- ---------------------------------------------------------------------------------------------
-- 2. Open amounts due per site and day.

-- The shard of a tenant's rows in open_due: concurrent payments of one site and month update
-- different rows (8 per site and due date) instead of waiting on one.
CREATE FUNCTION tenant_shard(uuid) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (hashtext($1::text) & 7)::smallint $$;

CREATE TABLE open_due (
    site_id   uuid NOT NULL REFERENCES sites (id),
    due_date  date NOT NULL,
    shard     smallint NOT NULL,
    -- Sum of amount_due_gnf - amount_paid_gnf of the charges of the site's tenants of this
    -- shard falling due on due_date (GNF).
    open_gnf  bigint NOT NULL,
    -- (No CHECK on the sign: the triggers add signed differences with INSERT .. ON CONFLICT,
    -- whose proposed row is checked before it meets the existing one.)
    PRIMARY KEY (site_id, due_date, shard)
);

INSERT INTO open_due (site_id, due_date, shard, open_gnf)
SELECT t.site_id, c.due_date, tenant_shard(c.tenant_id), sum(c.amount_due_gnf - c.amount_paid_gnf)
FROM charges c JOIN tenants t ON t.id = c.tenant_id
GROUP BY 1, 2, 3;

-- Adds the changes of one statement on charges (rows in key order: no two writers wait on each
-- other in opposite orders).
CREATE FUNCTION charges_open_due() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
        SELECT t.site_id, n.due_date, tenant_shard(n.tenant_id),
               sum(n.amount_due_gnf - n.amount_paid_gnf)
        FROM new_rows n JOIN tenants t ON t.id = n.tenant_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO open_due AS o (site_id, due_date, shard, open_gnf)
        SELECT t.site_id, d.due_date, tenant_shard(d.tenant_id), sum(d.open_gnf)
        FROM (SELECT tenant_id, due_date, amount_due_gnf - amount_paid_gnf AS open_gnf FROM new_rows
              UNION ALL
              SELECT tenant_id, due_date, amount_paid_gnf - amount_due_gnf FROM old_rows) d
        JOIN tenants t ON t.id = d.tenant_id
        GROUP BY 1, 2, 3 HAVING sum(d.open_gnf) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, due_date, shard) DO UPDATE SET open_gnf = o.open_gnf + excluded.open_gnf;
    ELSE
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

CREATE TRIGGER charges_open_due_insert AFTER INSERT ON charges
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_open_due();
CREATE TRIGGER charges_open_due_update AFTER UPDATE ON charges
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_open_due();
CREATE TRIGGER charges_open_due_delete AFTER DELETE ON charges
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION charges_open_due();

-- A tenant moved to another site takes what it owes along.
CREATE FUNCTION tenants_open_due_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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

CREATE TRIGGER tenants_open_due_moved AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_open_due_moved();

-- ---------------------------------------------------------------------------------------------
-- 3. Normalised search columns.

ALTER TABLE tenants
    ADD COLUMN name_norm text GENERATED ALWAYS AS (immutable_unaccent(lower(full_name))) STORED,
    ADD COLUMN unit_norm text GENERATED ALWAYS AS (immutable_unaccent(lower(unit))) STORED;

-- The expression indexes they replace.
DROP INDEX tenants_full_name_trgm_idx;
DROP INDEX tenants_unit_trgm_idx;
-- `%` and `<%` on the name (GIN), and the name's trigram distance `<->` for nearest-first
-- scans (GiST).
CREATE INDEX tenants_name_norm_trgm_idx ON tenants USING gin (name_norm gin_trgm_ops);
CREATE INDEX tenants_name_norm_knn_idx ON tenants USING gist (name_norm gist_trgm_ops);
-- LIKE '%word%' on the unit.
CREATE INDEX tenants_unit_norm_trgm_idx ON tenants USING gin (unit_norm gin_trgm_ops);

ANALYZE charges;
ANALYZE tenants;
ANALYZE open_due;
