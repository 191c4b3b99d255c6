-- Audit trail, idempotency keys of mutating RPCs, and dashboard alerts.

-- Append-only: UPDATE, DELETE and TRUNCATE raise. actor_id has no foreign key on purpose:
-- failed logins of unknown users are audited too, and users are disabled, never deleted.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,
    actor_role   text,
    action       text NOT NULL,            -- 'auth.login', 'collections.payments.record', ...
    target_type  text,
    target_id    text,
    request_id   uuid,
    client_ip    inet,
    outcome      text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT audit_log_outcome_known CHECK (outcome IN ('ok', 'denied', 'failed', 'invalid', 'error')),
    CONSTRAINT audit_log_action_not_blank CHECK (btrim(action) <> '')
);
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_actor_id_occurred_at_idx ON audit_log (actor_id, occurred_at);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, occurred_at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();

-- Replays of a mutating RPC (same actor, method and request_id) get the first answer.
-- fingerprint = hash of the request body: the same key with another body is refused.
CREATE TABLE idempotency_keys (
    actor_id       uuid NOT NULL,
    method         text NOT NULL,
    request_id     uuid NOT NULL,
    fingerprint    bytea NOT NULL,
    state          text NOT NULL DEFAULT 'in_flight',
    response_code  integer,
    response_body  bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (actor_id, method, request_id),
    CONSTRAINT idempotency_keys_state_known CHECK (state IN ('in_flight', 'completed')),
    CONSTRAINT idempotency_keys_completed_has_response
        CHECK (state <> 'completed' OR response_code IS NOT NULL),
    CONSTRAINT idempotency_keys_expires_after_created CHECK (expires_at > created_at)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- Alerts evaluated on a schedule (critical arrears, broken-promise spike, inactive agent, ...).
CREATE TABLE alerts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL,           -- 'critical_arrears', 'agent_inactive', ...
    severity         text NOT NULL,
    state            text NOT NULL DEFAULT 'open',
    site_id          uuid,
    agent_id         uuid,
    tenant_id        uuid,
    since            timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    message          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Identifies "the same problem", e.g. 'critical_arrears:site:<uuid>'.
    dedup_key        text NOT NULL,
    acknowledged_by  uuid,
    acknowledged_at  timestamptz,
    note             text,
    resolved_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alerts_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id),
    CONSTRAINT alerts_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT alerts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT alerts_acknowledged_by_fkey FOREIGN KEY (acknowledged_by) REFERENCES users (id),
    CONSTRAINT alerts_severity_known CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT alerts_state_known CHECK (state IN ('open', 'acknowledged', 'resolved')),
    CONSTRAINT alerts_acknowledged_consistent
        CHECK (state <> 'acknowledged' OR (acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL)),
    CONSTRAINT alerts_resolved_consistent CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
-- At most one unresolved (open or acknowledged) alert per problem; the evaluator upserts
-- on it and a resolved alert lets a new one open.
CREATE UNIQUE INDEX alerts_dedup_key_unresolved_key ON alerts (dedup_key) WHERE state <> 'resolved';
CREATE INDEX alerts_state_severity_since_idx ON alerts (state, severity, since DESC);
CREATE INDEX alerts_site_id_idx ON alerts (site_id) WHERE site_id IS NOT NULL;
CREATE TRIGGER alerts_set_updated_at BEFORE UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
