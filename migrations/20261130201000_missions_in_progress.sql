-- The live hub reads every agent's mission in progress of the day every few seconds
-- (server/live/mod.rs): only the few rows in progress are indexed.
CREATE INDEX missions_in_progress_idx ON missions (mission_date, agent_id, started_at DESC)
    WHERE status = 'in_progress';
