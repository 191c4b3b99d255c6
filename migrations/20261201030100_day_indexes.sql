-- The daily figures (GetDailyStats, GetDailyReport, GetSite's day) read the interactions of one
-- day and the promises made that day: by their interaction's time, or their own when made
-- without one. Without these, a busy day at 102,000 tenants read every interaction and joined
-- every promise to its interaction. Additive: no data changes.
CREATE INDEX interactions_occurred_at_idx ON interactions (occurred_at);
CREATE INDEX promises_created_at_idx ON promises (created_at) WHERE interaction_id IS NULL;

ANALYZE interactions;
ANALYZE promises;
