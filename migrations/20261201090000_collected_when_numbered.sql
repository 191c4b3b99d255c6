-- A payment or reversal entry counts in its site's collected_days when it is numbered, not when
-- it is inserted (docs/adr/0010-ledger-replay.md, "Hot rows held for the numbering only").
--
-- Entries are inserted without a number and numbered by the statement just before the key
-- completion and COMMIT (store::payments::number_entry). Moved by the INSERT, a site's
-- collected_days row (site, day, tenant shard) stayed locked through the whole ledger write;
-- moved by the numbering, it is taken after the site's receipt counter, which every writer of
-- the site's rows already holds, so no two transactions ever wait on it. Every committed entry
-- has a number (payments_numbered), and an entry is numbered once (payments_append_only), so
-- each entry is counted exactly once: when it is inserted with its number (none are today), or
-- when it is given one.
--
-- The receipt number's unique index leaves out rows without a number (partial): the numbering
-- (`WHERE id = $1 AND receipt_number IS NULL`) was planned as a scan of that index for NULL
-- entries, which grow by one dead entry per numbered entry until a vacuum, instead of the
-- primary key's one entry; and an entry's INSERT no longer writes an entry there. Uniqueness of
-- the numbers is unchanged (NULLs were never equal to each other).
--
-- next_receipt_number becomes plpgsql: as an SQL function whose body writes, it was parsed and
-- planned again at every call; plpgsql keeps each connection's plan. Same statements, same
-- answer (NULL for an unknown site, which payments_numbered then refuses at COMMIT).

CREATE OR REPLACE FUNCTION payments_collected_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO collected_days AS d (site_id, day, shard, collected_gnf)
        SELECT site_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date,
               tenant_shard(tenant_id),
               sum(CASE WHEN kind = 'payment' THEN amount_gnf ELSE -amount_gnf END)
        FROM new_rows WHERE receipt_number IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, day, shard) DO UPDATE
            SET collected_gnf = d.collected_gnf + excluded.collected_gnf;
    ELSE
        INSERT INTO collected_days AS d (site_id, day, shard, collected_gnf)
        SELECT n.site_id, (n.occurred_at AT TIME ZONE 'Africa/Conakry')::date,
               tenant_shard(n.tenant_id),
               sum(CASE WHEN n.kind = 'payment' THEN n.amount_gnf ELSE -n.amount_gnf END)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.receipt_number IS NULL AND n.receipt_number IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (site_id, day, shard) DO UPDATE
            SET collected_gnf = d.collected_gnf + excluded.collected_gnf;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payments_collected_when_numbered AFTER UPDATE ON payments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payments_collected_days();

CREATE OR REPLACE FUNCTION next_receipt_number(p_site_id uuid, p_year integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_number bigint;
    v_code text;
BEGIN
    INSERT INTO receipt_counters AS rc (site_id, year, last_number)
    VALUES (p_site_id, p_year, 1)
    ON CONFLICT (site_id, year) DO UPDATE SET last_number = rc.last_number + 1
    RETURNING last_number INTO v_number;
    SELECT s.code INTO v_code FROM sites s WHERE s.id = p_site_id;
    RETURN v_code || '-' || lpad(p_year::text, 4, '0') || '-' || lpad(v_number::text, 6, '0');
END;
$$;

ALTER TABLE payments DROP CONSTRAINT payments_receipt_number_key;
CREATE UNIQUE INDEX payments_receipt_number_key ON payments (receipt_number)
    WHERE receipt_number IS NOT NULL;
