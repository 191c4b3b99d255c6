-- Collections (recouvrement): tenants, monthly charges, payments and their FIFO allocations,
-- calls and visits, promises to pay.

CREATE TABLE tenants (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id           uuid NOT NULL,
    unit              text NOT NULL,
    full_name         text NOT NULL,
    phone             text,
    home_latitude     double precision,
    home_longitude    double precision,
    monthly_rent_gnf  bigint NOT NULL,
    -- Overpayment not yet allocated to a charge (see docs/schema.md, "money invariants").
    credit_gnf        bigint NOT NULL DEFAULT 0,
    active            boolean NOT NULL DEFAULT true,
    moved_in_on       date,
    moved_out_on      date,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    search_vector     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('french_unaccent'::regconfig, coalesce(full_name, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig,
               coalesce(unit, '') || ' ' || coalesce(phone, '') || ' '
               || coalesce(substr(phone, 2), '') || ' ' || coalesce(right(phone, 9), '')), 'B')
    ) STORED,
    CONSTRAINT tenants_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id),
    CONSTRAINT tenants_unit_not_blank CHECK (btrim(unit) <> ''),
    CONSTRAINT tenants_full_name_not_blank CHECK (btrim(full_name) <> ''),
    CONSTRAINT tenants_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    CONSTRAINT tenants_home_latitude_range CHECK (home_latitude BETWEEN -90 AND 90),
    CONSTRAINT tenants_home_longitude_range CHECK (home_longitude BETWEEN -180 AND 180),
    CONSTRAINT tenants_home_location_complete CHECK ((home_latitude IS NULL) = (home_longitude IS NULL)),
    CONSTRAINT tenants_monthly_rent_nonnegative CHECK (monthly_rent_gnf >= 0),
    CONSTRAINT tenants_credit_nonnegative CHECK (credit_gnf >= 0),
    CONSTRAINT tenants_moved_out_after_moved_in CHECK (moved_out_on >= moved_in_on)
);
-- One current occupant per unit.
CREATE UNIQUE INDEX tenants_site_unit_active_key ON tenants (site_id, unit) WHERE active;
-- "Tenants by site + active" of the original system (idx_locataires_site_actif).
CREATE INDEX tenants_site_active_idx ON tenants (site_id, active);
-- Full-text search in French, accents ignored (idx_locataires_search_text).
CREATE INDEX tenants_search_vector_idx ON tenants USING gin (search_vector);
-- Typo-tolerant name search: similarity(immutable_unaccent(lower(full_name)), ...) or %.
CREATE INDEX tenants_full_name_trgm_idx ON tenants USING gin (immutable_unaccent(lower(full_name)) gin_trgm_ops);
-- Arrears map: bounding-box queries on point(longitude, latitude) <@ box(...).
CREATE INDEX tenants_home_point_idx ON tenants USING gist (point(home_longitude, home_latitude))
    WHERE home_latitude IS NOT NULL;
CREATE INDEX tenants_phone_idx ON tenants (phone) WHERE phone IS NOT NULL;
CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One charge per tenant per month. amount_paid_gnf is the sum of the charge's allocations.
CREATE TABLE charges (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    period           date NOT NULL,
    amount_due_gnf   bigint NOT NULL,
    amount_paid_gnf  bigint NOT NULL DEFAULT 0,
    due_date         date NOT NULL,
    -- Set when amount_paid_gnf reaches amount_due_gnf, cleared if a reversal reopens the charge.
    paid_in_full_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT charges_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT charges_tenant_period_key UNIQUE (tenant_id, period),
    CONSTRAINT charges_period_first_of_month CHECK (extract(day FROM period) = 1),
    CONSTRAINT charges_amount_due_nonnegative CHECK (amount_due_gnf >= 0),
    CONSTRAINT charges_amount_paid_nonnegative CHECK (amount_paid_gnf >= 0),
    CONSTRAINT charges_amount_paid_within_due CHECK (amount_paid_gnf <= amount_due_gnf),
    CONSTRAINT charges_due_date_in_or_after_period CHECK (due_date >= period),
    CONSTRAINT charges_paid_in_full_consistent
        CHECK ((paid_in_full_at IS NOT NULL) = (amount_paid_gnf = amount_due_gnf))
);
-- Arrears by tenant + date (idx_impayes_locataire_date): only open charges are indexed.
CREATE INDEX charges_arrears_tenant_period_idx ON charges (tenant_id, period)
    WHERE amount_paid_gnf < amount_due_gnf;
-- Aging and "charges over 60 days overdue" across all tenants.
CREATE INDEX charges_arrears_due_date_idx ON charges (due_date)
    INCLUDE (tenant_id, amount_due_gnf, amount_paid_gnf)
    WHERE amount_paid_gnf < amount_due_gnf;
-- Monthly figures (due vs collected this month, punctuality).
CREATE INDEX charges_period_idx ON charges (period);
CREATE TRIGGER charges_set_updated_at BEFORE UPDATE ON charges
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Calls and visits. occurred_at comes from the device, received_at from the server.
CREATE TABLE interactions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind                  text NOT NULL,
    tenant_id             uuid NOT NULL,
    agent_id              uuid NOT NULL,
    outcome               text NOT NULL,
    notes                 text NOT NULL DEFAULT '',
    occurred_at           timestamptz NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now(),
    latitude              double precision,
    longitude             double precision,
    accuracy_m            double precision,
    distance_to_tenant_m  double precision,
    is_far_from_tenant    boolean NOT NULL DEFAULT false,
    is_mock_location      boolean NOT NULL DEFAULT false,
    mission_id            uuid,
    request_id            uuid NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT interactions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT interactions_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT interactions_request_id_key UNIQUE (request_id),
    CONSTRAINT interactions_kind_known CHECK (kind IN ('call', 'visit')),
    CONSTRAINT interactions_outcome_known CHECK (outcome IN (
        'no_answer', 'wrong_number', 'promise_made', 'paid', 'refused', 'absent',
        'tenant_moved', 'dispute', 'other')),
    CONSTRAINT interactions_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT interactions_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT interactions_location_complete CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT interactions_visit_location_required
        CHECK (kind <> 'visit' OR (latitude IS NOT NULL AND longitude IS NOT NULL)),
    CONSTRAINT interactions_accuracy_nonnegative CHECK (accuracy_m >= 0),
    CONSTRAINT interactions_distance_nonnegative CHECK (distance_to_tenant_m >= 0)
);
-- Interactions by agent + date (idx_recouvrement_agent_date).
CREATE INDEX interactions_agent_occurred_at_idx ON interactions (agent_id, occurred_at);
-- Tenant history and "last contact".
CREATE INDEX interactions_tenant_occurred_at_idx ON interactions (tenant_id, occurred_at DESC);
CREATE INDEX interactions_mission_id_idx ON interactions (mission_id) WHERE mission_id IS NOT NULL;

CREATE TABLE promises (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    agent_id           uuid NOT NULL,
    interaction_id     uuid,
    amount_gnf         bigint NOT NULL,
    promised_date      date NOT NULL,
    status             text NOT NULL DEFAULT 'pending',
    -- Payments counted towards the promise so far.
    covered_gnf        bigint NOT NULL DEFAULT 0,
    status_changed_at  timestamptz,
    cancel_reason      text,
    rescheduled_from   date,
    reschedule_reason  text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promises_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT promises_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT promises_interaction_id_fkey FOREIGN KEY (interaction_id) REFERENCES interactions (id),
    CONSTRAINT promises_amount_positive CHECK (amount_gnf > 0),
    CONSTRAINT promises_covered_nonnegative CHECK (covered_gnf >= 0),
    CONSTRAINT promises_status_known CHECK (status IN ('pending', 'kept', 'partially_kept', 'broken', 'cancelled')),
    CONSTRAINT promises_cancel_reason_when_cancelled
        CHECK (status <> 'cancelled' OR cancel_reason IS NOT NULL),
    CONSTRAINT promises_reschedule_reason_with_date
        CHECK (rescheduled_from IS NULL OR reschedule_reason IS NOT NULL)
);
CREATE INDEX promises_tenant_id_status_idx ON promises (tenant_id, status);
CREATE INDEX promises_agent_id_created_at_idx ON promises (agent_id, created_at);
-- The broken-promise job and "promises falling due" of mission planning.
CREATE INDEX promises_pending_promised_date_idx ON promises (promised_date) WHERE status = 'pending';
CREATE INDEX promises_interaction_id_idx ON promises (interaction_id) WHERE interaction_id IS NOT NULL;
CREATE TRIGGER promises_set_updated_at BEFORE UPDATE ON promises
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Payments are append-only: a reversal is a new row (kind 'reversal') that points to the
-- payment it cancels, carries the same positive amount and gets its own receipt number.
CREATE TABLE payments (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL,
    site_id              uuid NOT NULL,
    kind                 text NOT NULL DEFAULT 'payment',
    amount_gnf           bigint NOT NULL,
    method               text NOT NULL,
    operator_reference   text,
    receipt_number       text NOT NULL,
    occurred_at          timestamptz NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    agent_id             uuid NOT NULL,
    interaction_id       uuid,
    promise_id           uuid,
    reverses_payment_id  uuid,
    reason               text,
    -- The phone's idempotency id, kept for good (replays after the idempotency window).
    request_id           uuid NOT NULL,
    CONSTRAINT payments_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT payments_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id),
    CONSTRAINT payments_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT payments_interaction_id_fkey FOREIGN KEY (interaction_id) REFERENCES interactions (id),
    CONSTRAINT payments_promise_id_fkey FOREIGN KEY (promise_id) REFERENCES promises (id),
    CONSTRAINT payments_reverses_payment_id_fkey FOREIGN KEY (reverses_payment_id) REFERENCES payments (id),
    CONSTRAINT payments_receipt_number_key UNIQUE (receipt_number),
    CONSTRAINT payments_request_id_key UNIQUE (request_id),
    CONSTRAINT payments_kind_known CHECK (kind IN ('payment', 'reversal')),
    CONSTRAINT payments_amount_positive CHECK (amount_gnf > 0),
    CONSTRAINT payments_method_known CHECK (method IN ('cash', 'orange_money', 'mtn_momo', 'bank_transfer')),
    CONSTRAINT payments_receipt_number_format CHECK (receipt_number ~ '^[A-Z]{3,4}-[0-9]{4}-[0-9]{6,}$'),
    CONSTRAINT payments_operator_reference_not_blank CHECK (btrim(operator_reference) <> ''),
    CONSTRAINT payments_reversal_shape CHECK (
        (kind = 'payment' AND reverses_payment_id IS NULL)
        OR (kind = 'reversal' AND reverses_payment_id IS NOT NULL
            AND reverses_payment_id <> id AND reason IS NOT NULL AND btrim(reason) <> ''))
);
-- A payment is reversed at most once (partial: most rows have no reversed payment).
CREATE UNIQUE INDEX payments_reverses_payment_id_key ON payments (reverses_payment_id)
    WHERE reverses_payment_id IS NOT NULL;
CREATE INDEX payments_tenant_id_occurred_at_idx ON payments (tenant_id, occurred_at);
CREATE INDEX payments_site_id_occurred_at_idx ON payments (site_id, occurred_at);
CREATE INDEX payments_agent_id_occurred_at_idx ON payments (agent_id, occurred_at);
CREATE INDEX payments_occurred_at_idx ON payments (occurred_at);
CREATE INDEX payments_operator_reference_idx ON payments (operator_reference)
    WHERE operator_reference IS NOT NULL;
CREATE INDEX payments_promise_id_idx ON payments (promise_id) WHERE promise_id IS NOT NULL;
CREATE TRIGGER payments_append_only BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();

-- Gap-free receipt numbering per site and calendar year (Africa/Conakry = UTC).
-- Incremented inside the payment transaction; see next_receipt_number() below.
CREATE TABLE receipt_counters (
    site_id      uuid NOT NULL,
    year         integer NOT NULL,
    last_number  bigint NOT NULL,
    CONSTRAINT receipt_counters_pkey PRIMARY KEY (site_id, year),
    CONSTRAINT receipt_counters_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id),
    CONSTRAINT receipt_counters_year_range CHECK (year BETWEEN 2000 AND 9999),
    CONSTRAINT receipt_counters_last_number_positive CHECK (last_number > 0)
);

-- Takes the next number for (site, year) and formats it: 'KAL-2026-000123'.
-- The row lock taken by the upsert serialises concurrent payments of the same site, and
-- the number is given back if the surrounding transaction rolls back: no gaps.
CREATE FUNCTION next_receipt_number(p_site_id uuid, p_year integer) RETURNS text
LANGUAGE sql VOLATILE AS $$
    WITH next AS (
        INSERT INTO receipt_counters AS rc (site_id, year, last_number)
        VALUES (p_site_id, p_year, 1)
        ON CONFLICT (site_id, year) DO UPDATE SET last_number = rc.last_number + 1
        RETURNING last_number
    )
    SELECT s.code || '-' || lpad(p_year::text, 4, '0') || '-' || lpad(next.last_number::text, 6, '0')
    FROM next, sites s
    WHERE s.id = p_site_id
$$;

-- Which charges a payment paid. A payment writes positive rows, oldest charge first (FIFO);
-- its reversal writes the same rows negated. charges.amount_paid_gnf = sum(amount_gnf).
CREATE TABLE payment_allocations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id  uuid NOT NULL,
    charge_id   bigint NOT NULL,
    amount_gnf  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_allocations_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id),
    CONSTRAINT payment_allocations_charge_id_fkey FOREIGN KEY (charge_id) REFERENCES charges (id),
    CONSTRAINT payment_allocations_payment_charge_key UNIQUE (payment_id, charge_id),
    CONSTRAINT payment_allocations_amount_nonzero CHECK (amount_gnf <> 0)
);
CREATE INDEX payment_allocations_charge_id_idx ON payment_allocations (charge_id);
CREATE TRIGGER payment_allocations_append_only BEFORE UPDATE OR DELETE ON payment_allocations
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
