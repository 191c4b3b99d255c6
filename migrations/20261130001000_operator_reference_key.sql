-- Operator references are compared by a key: their ASCII letters and digits, upper-cased
-- (`domain::outcome::operator_reference_key`, which this function repeats; a test holds the
-- two together). `MP261130.6186.A75896`, `mp261130.6186.a75896`, `MP261130 6186 A75896` and
-- `MP2611306186A75896` are one transfer. The text stays as typed in `operator_reference`.
CREATE FUNCTION operator_reference_key(reference text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT nullif(upper(regexp_replace(reference, '[^A-Za-z0-9]', '', 'g')), '') $$;

-- Generated, so every writer (the server, the seed, a bulk import) stores it, and existing
-- rows get theirs here. Adding a stored generated column rewrites the table without firing
-- the append-only trigger: no payment's recorded facts change.
ALTER TABLE payments
    ADD COLUMN operator_reference_key text
        GENERATED ALWAYS AS (operator_reference_key(operator_reference)) STORED;

-- The duplicate rule ("one live payment per method and reference key") reads this index under
-- the reference's advisory lock (`store::payments::operator_reference_used`). It cannot be a
-- unique index: a reversed payment frees its reference, and payments are never updated.
DROP INDEX payments_operator_reference_idx;
CREATE INDEX payments_operator_reference_key_idx ON payments (operator_reference_key, method)
    WHERE operator_reference_key IS NOT NULL;

-- Live payments recorded before this rule whose references now share a key stay as recorded:
-- payments are immutable facts, and each was accepted under the rule of its day. They are
-- counted here so an operator can review them; a new payment with that key is refused.
DO $$
DECLARE
    shared bigint;
BEGIN
    SELECT count(*) INTO shared FROM (
        SELECT p.method, p.operator_reference_key
          FROM payments p
         WHERE p.kind = 'payment' AND p.operator_reference_key IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)
         GROUP BY p.method, p.operator_reference_key
        HAVING count(*) > 1) groups;
    IF shared > 0 THEN
        RAISE NOTICE '% operator reference keys are shared by more than one live payment', shared;
    END IF;
END $$;
