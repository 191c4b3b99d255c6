-- What the daily plan and the mission lifecycle keep beyond the first missions table: the
-- reasons a tenant was picked, the estimated travel time of the leg, the note of the last
-- status change, how the arrival was established, and whether a cancellation was the
-- planner's (a later run may plan the tenant again) or a person's (kept).

ALTER TABLE missions
    ADD COLUMN reasons text[] NOT NULL DEFAULT '{}',
    ADD COLUMN estimated_travel_secs double precision,
    ADD COLUMN status_note text,
    ADD COLUMN arrival_source text,
    ADD COLUMN cancelled_by_generation boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT missions_status_note_length CHECK (char_length(status_note) <= 1000),
    ADD CONSTRAINT missions_arrival_source_known CHECK (arrival_source IN ('geofence', 'declared')),
    ADD CONSTRAINT missions_travel_nonnegative CHECK (estimated_travel_secs >= 0),
    ADD CONSTRAINT missions_cancelled_by_generation_when_cancelled
        CHECK (NOT cancelled_by_generation OR status = 'cancelled');
