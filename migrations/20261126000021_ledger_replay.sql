-- Ledger replay (docs/adr/0010-ledger-replay.md): the allocation rows of valid payments are
-- derived and rewritten by difference whenever the tenant's ledger changes; the rows of a
-- reversed payment and of its reversal entry stay as they were written (history).

-- What remained to pay on the charge right after the row, as the replay that wrote it saw it.
ALTER TABLE payment_allocations ADD COLUMN outstanding_after_gnf bigint;

DROP TRIGGER payment_allocations_append_only ON payment_allocations;

-- Rows written so far: their charge's due less the rows written up to them (write order).
UPDATE payment_allocations a
SET outstanding_after_gnf = c.amount_due_gnf
    - (SELECT coalesce(sum(b.amount_gnf), 0) FROM payment_allocations b
       WHERE b.charge_id = a.charge_id AND b.id <= a.id)
FROM charges c
WHERE c.id = a.charge_id;

ALTER TABLE payment_allocations
    ALTER COLUMN outstanding_after_gnf SET NOT NULL;

-- Rows of a reversal entry, or of a payment that has been reversed, are history: neither
-- updated nor deleted. The rows of a valid payment are the replay's to rewrite.
CREATE FUNCTION payment_allocations_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM payments p
               WHERE p.id = OLD.payment_id
                 AND (p.kind = 'reversal'
                      OR EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)))
    THEN
        RAISE EXCEPTION 'payment_allocations of a reversal or a reversed payment are history: % is not allowed', TG_OP;
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END;
$$;

CREATE TRIGGER payment_allocations_history BEFORE UPDATE OR DELETE ON payment_allocations
    FOR EACH ROW EXECUTE FUNCTION payment_allocations_frozen();
CREATE TRIGGER payment_allocations_no_truncate BEFORE TRUNCATE ON payment_allocations
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();
