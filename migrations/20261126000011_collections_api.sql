-- What the collections API records beyond the first schema.

-- A visit may come without a GPS fix (the phone had none): it is then flagged, not refused.
ALTER TABLE interactions DROP CONSTRAINT interactions_visit_location_required;
ALTER TABLE interactions
    ADD COLUMN fix_time            timestamptz,
    ADD COLUMN call_phone          text,
    ADD COLUMN call_duration_secs  integer,
    ADD CONSTRAINT interactions_call_duration_nonnegative CHECK (call_duration_secs >= 0),
    ADD CONSTRAINT interactions_notes_length CHECK (char_length(notes) <= 2000);

ALTER TABLE payments
    ADD COLUMN mission_id    uuid,
    ADD COLUMN notes         text NOT NULL DEFAULT '',
    ADD COLUMN payer_phone   text,
    -- Who entered it when not the collecting agent (back-office entry).
    ADD COLUMN recorded_by   uuid REFERENCES users (id),
    -- Part of the amount kept as tenant credit (a reversal stores the credit it took back).
    ADD COLUMN credit_gnf    bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT payments_credit_within_amount CHECK (credit_gnf BETWEEN 0 AND amount_gnf),
    ADD CONSTRAINT payments_notes_length CHECK (char_length(notes) <= 2000);

ALTER TABLE promises
    -- The first promised date; NULL means never rescheduled (= promised_date).
    ADD COLUMN original_promised_date  date,
    ADD COLUMN reschedule_count        integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT promises_reschedule_count_nonnegative CHECK (reschedule_count >= 0);

ALTER TABLE tenants ADD COLUMN address text NOT NULL DEFAULT '';

-- Each change of a promise after it was made, for the tenant's timeline: rescheduled,
-- cancelled, and the status changes derived from payments (kept, partially kept, broken).
-- The promise row itself is the "made" event.
CREATE TABLE promise_events (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    promise_id              uuid NOT NULL REFERENCES promises (id),
    kind                    text NOT NULL,
    occurred_at             timestamptz NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now(),
    -- NULL for status changes made by the server.
    actor_id                uuid REFERENCES users (id),
    previous_promised_date  date,
    reason                  text,
    CONSTRAINT promise_events_kind_known CHECK (kind IN (
        'rescheduled', 'cancelled', 'kept', 'partially_kept', 'broken'))
);
CREATE INDEX promise_events_promise_id_idx ON promise_events (promise_id, occurred_at);
CREATE TRIGGER promise_events_append_only BEFORE UPDATE OR DELETE ON promise_events
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
