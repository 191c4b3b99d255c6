-- Receipt numbers taken last (docs/adr/0010-ledger-replay.md, "Receipt numbers"): a payment or
-- reversal entry is inserted without its number, and numbered by the statement just before the
-- key completion and COMMIT. The site's counter row (`next_receipt_number`) stays locked until
-- COMMIT, so a rolled-back call still gives its number back (gap-free); it is now locked for
-- the last two statements of the call instead of from the INSERT on, through the ledger's
-- write and its read-model triggers.
--
-- The rules that keep the ledger honest stay in the schema:
-- - a row may be inserted without a number, but no transaction commits one
--   (`payments_numbered`, checked at COMMIT);
-- - rows stay append-only, except that a row without a number may be given one, once, with
--   nothing else changed (`payments_append_only`).

ALTER TABLE payments ALTER COLUMN receipt_number DROP NOT NULL;

-- At COMMIT, for each row inserted without a number: it must have one by then.
CREATE FUNCTION payments_numbered() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM payments WHERE id = NEW.id AND receipt_number IS NULL) THEN
        RAISE EXCEPTION 'payments: entry % has no receipt number at commit', NEW.id
            USING ERRCODE = 'not_null_violation', TABLE = 'payments',
                  COLUMN = 'receipt_number', CONSTRAINT = 'payments_numbered';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER payments_numbered AFTER INSERT ON payments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.receipt_number IS NULL)
    EXECUTE FUNCTION payments_numbered();

-- Append-only, but for the number given to a row that had none (the other columns compared as
-- JSON, so a column added later is covered too; the generated operator_reference_key is not
-- computed yet in a BEFORE trigger's NEW row).
CREATE FUNCTION payments_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.receipt_number IS NULL AND NEW.receipt_number IS NOT NULL
       AND to_jsonb(NEW) - 'receipt_number' - 'operator_reference_key'
           = to_jsonb(OLD) - 'receipt_number' - 'operator_reference_key'
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$;

DROP TRIGGER payments_append_only ON payments;
CREATE TRIGGER payments_append_only BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();
