-- Alerts raised by the scheduled rules (`server/jobs/alerts.rs`, rules in
-- `server/domain/alerts.rs`). The table of `20261126000006_audit_idempotency.sql` keeps its
-- columns (since = start_time, last_seen_at = update_time, resolved_at = resolve_time,
-- acknowledged_by/at + note); this migration closes what it left open:
-- - the kinds the rules raise, and a site on every alert (ListAlerts scopes by site: an agent's
--   alert carries the agent's first site by code);
-- - one target: an agent alert names its agent, a tenant alert its tenant, a site alert
--   neither;
-- - a note of at most 1,000 characters (AcknowledgeAlert checks it first);
-- - the listing order of a site's alerts (newest start first).
-- The partial unique index `alerts_dedup_key_unresolved_key` (one unresolved alert per
-- condition key) is the one of the first migration. No alert row existed before: nothing to
-- mend.
ALTER TABLE alerts
    ALTER COLUMN site_id SET NOT NULL,
    ADD CONSTRAINT alerts_kind_known CHECK (kind IN (
        'critical_arrears', 'broken_promise_spike', 'agent_inactive', 'low_agent_score',
        'sensitive_site', 'far_visit')),
    ADD CONSTRAINT alerts_target_single CHECK (agent_id IS NULL OR tenant_id IS NULL),
    ADD CONSTRAINT alerts_note_length CHECK (note IS NULL OR char_length(note) <= 1000),
    ADD CONSTRAINT alerts_dedup_key_not_blank CHECK (btrim(dedup_key) <> ''),
    ADD CONSTRAINT alerts_details_object CHECK (jsonb_typeof(details) = 'object');

-- ListAlerts: a site's alerts by start, newest first.
CREATE INDEX alerts_site_since_idx ON alerts (site_id, since DESC, id DESC);
