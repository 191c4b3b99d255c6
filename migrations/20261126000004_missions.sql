-- Missions (a planned visit of a tenant by an agent on a day) and agent scoring.

CREATE TABLE missions (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_date            date NOT NULL,
    agent_id                uuid NOT NULL,
    tenant_id               uuid NOT NULL,
    site_id                 uuid NOT NULL,
    priority                double precision NOT NULL DEFAULT 0,
    -- Why the planner chose this tenant: {"outstanding_gnf": .., "days_overdue": .., ...}.
    priority_reasons        jsonb NOT NULL DEFAULT '{}'::jsonb,
    route_order             integer,
    estimated_distance_m    double precision,
    status                  text NOT NULL DEFAULT 'planned',
    failure_reason          text,
    arrived_at              timestamptz,
    started_at              timestamptz,
    finished_at             timestamptz,
    closing_interaction_id  uuid,
    closing_payment_id      uuid,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT missions_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT missions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    CONSTRAINT missions_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id),
    -- Deferrable: a mission and the visit that closes it may be written in either order.
    CONSTRAINT missions_closing_interaction_id_fkey FOREIGN KEY (closing_interaction_id)
        REFERENCES interactions (id) DEFERRABLE INITIALLY IMMEDIATE,
    CONSTRAINT missions_closing_payment_id_fkey FOREIGN KEY (closing_payment_id)
        REFERENCES payments (id) DEFERRABLE INITIALLY IMMEDIATE,
    -- One mission per tenant per day.
    CONSTRAINT missions_date_tenant_key UNIQUE (mission_date, tenant_id),
    CONSTRAINT missions_status_known CHECK (status IN ('planned', 'in_progress', 'done', 'failed', 'cancelled')),
    CONSTRAINT missions_failure_reason_when_failed CHECK (status <> 'failed' OR failure_reason IS NOT NULL),
    CONSTRAINT missions_route_order_nonnegative CHECK (route_order >= 0),
    CONSTRAINT missions_estimated_distance_nonnegative CHECK (estimated_distance_m >= 0),
    CONSTRAINT missions_priority_finite CHECK (priority <> 'NaN'::double precision
        AND priority <> 'Infinity'::double precision AND priority <> '-Infinity'::double precision),
    CONSTRAINT missions_finished_after_started CHECK (finished_at >= started_at)
);
-- Missions by agent + date (idx_missions_agent_date).
CREATE INDEX missions_agent_date_idx ON missions (agent_id, mission_date);
CREATE INDEX missions_site_date_idx ON missions (site_id, mission_date);
CREATE INDEX missions_tenant_id_idx ON missions (tenant_id);
CREATE TRIGGER missions_set_updated_at BEFORE UPDATE ON missions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE interactions
    ADD CONSTRAINT interactions_mission_id_fkey FOREIGN KEY (mission_id) REFERENCES missions (id);

-- Raw scoring events. Points are written by the application (visit +1, promise +2,
-- payment +3, refusal -1) so a rule change never rewrites history. Exactly one source.
CREATE TABLE score_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id        uuid NOT NULL,
    day             date NOT NULL,          -- Africa/Conakry calendar day of occurred_at
    kind            text NOT NULL,
    points          integer NOT NULL,
    interaction_id  uuid,
    payment_id      uuid,
    promise_id      uuid,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT score_events_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT score_events_interaction_id_fkey FOREIGN KEY (interaction_id) REFERENCES interactions (id),
    CONSTRAINT score_events_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id),
    CONSTRAINT score_events_promise_id_fkey FOREIGN KEY (promise_id) REFERENCES promises (id),
    CONSTRAINT score_events_kind_known CHECK (kind IN ('visit', 'promise', 'payment', 'refusal', 'payment_reversal')),
    CONSTRAINT score_events_one_source CHECK (num_nonnulls(interaction_id, payment_id, promise_id) = 1),
    CONSTRAINT score_events_source_matches_kind CHECK (
        (kind IN ('visit', 'refusal') AND interaction_id IS NOT NULL)
        OR (kind = 'promise' AND promise_id IS NOT NULL)
        OR (kind IN ('payment', 'payment_reversal') AND payment_id IS NOT NULL))
);
-- A source scores at most once per kind: writers use ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX score_events_kind_interaction_key ON score_events (kind, interaction_id)
    WHERE interaction_id IS NOT NULL;
CREATE UNIQUE INDEX score_events_kind_payment_key ON score_events (kind, payment_id)
    WHERE payment_id IS NOT NULL;
CREATE UNIQUE INDEX score_events_kind_promise_key ON score_events (kind, promise_id)
    WHERE promise_id IS NOT NULL;
CREATE INDEX score_events_agent_day_idx ON score_events (agent_id, day);
CREATE INDEX score_events_day_idx ON score_events (day);

-- Daily figures per agent, updated with each action; always equal to a recomputation from
-- score_events (score) and interactions/promises/payments (counters).
CREATE TABLE agent_daily_scores (
    agent_id        uuid NOT NULL,
    day             date NOT NULL,
    score           integer NOT NULL DEFAULT 0,
    calls           integer NOT NULL DEFAULT 0,
    visits          integer NOT NULL DEFAULT 0,
    promises        integer NOT NULL DEFAULT 0,
    payments_count  integer NOT NULL DEFAULT 0,
    payments_gnf    bigint NOT NULL DEFAULT 0,
    refusals        integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Performance by agent + date (idx_performances_agent_date).
    CONSTRAINT agent_daily_scores_pkey PRIMARY KEY (agent_id, day),
    CONSTRAINT agent_daily_scores_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id),
    CONSTRAINT agent_daily_scores_counters_nonnegative CHECK (
        calls >= 0 AND visits >= 0 AND promises >= 0 AND payments_count >= 0 AND refusals >= 0)
);
-- Daily ranking: all agents of a day by score.
CREATE INDEX agent_daily_scores_day_score_idx ON agent_daily_scores (day, score DESC);
CREATE TRIGGER agent_daily_scores_set_updated_at BEFORE UPDATE ON agent_daily_scores
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
