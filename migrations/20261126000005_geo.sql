-- Agent positions: a time series partitioned by day of fix_time (UTC = Africa/Conakry).

CREATE TABLE agent_positions (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    agent_id          uuid NOT NULL,
    -- Per-agent sequence number set by the phone; resends after a reconnect reuse it.
    sequence          bigint NOT NULL,
    latitude          double precision NOT NULL,
    longitude         double precision NOT NULL,
    accuracy_m        real,
    speed_mps         real,
    heading_deg       real,
    battery_percent   smallint,
    is_mock_location  boolean NOT NULL DEFAULT false,
    fix_time          timestamptz NOT NULL,   -- from the device
    received_at       timestamptz NOT NULL DEFAULT now(),
    -- Dedup key. A unique constraint on a partitioned table must contain the partition key;
    -- a resent position is the same stored fix, so it carries the same fix_time and
    -- INSERT .. ON CONFLICT ON CONSTRAINT agent_positions_agent_sequence_key DO NOTHING
    -- drops it. (See docs/schema.md.)
    CONSTRAINT agent_positions_agent_sequence_key UNIQUE (agent_id, sequence, fix_time),
    CONSTRAINT agent_positions_sequence_nonnegative CHECK (sequence >= 0),
    CONSTRAINT agent_positions_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT agent_positions_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT agent_positions_accuracy_nonnegative CHECK (accuracy_m >= 0),
    CONSTRAINT agent_positions_speed_nonnegative CHECK (speed_mps >= 0),
    CONSTRAINT agent_positions_heading_range CHECK (heading_deg >= 0 AND heading_deg < 360),
    CONSTRAINT agent_positions_battery_range CHECK (battery_percent BETWEEN 0 AND 100)
) PARTITION BY RANGE (fix_time);
-- No foreign key to users: rows are dropped by partition and written in bulk; agent ids
-- come from the authenticated stream.

-- Track of an agent between two instants.
CREATE INDEX agent_positions_agent_fix_time_idx ON agent_positions (agent_id, fix_time);

-- Creates the missing daily partitions agent_positions_pYYYYMMDD for every day in
-- [p_from, p_to]; returns how many were created. Safe to call from several replicas.
CREATE FUNCTION ensure_agent_position_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d        date;
    created  integer := 0;
    part     text;
BEGIN
    IF p_to < p_from THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('akig.agent_positions.partitions'));
    d := p_from;
    WHILE d <= p_to LOOP
        part := 'agent_positions_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF agent_positions FOR VALUES FROM (%L) TO (%L)',
                part,
                to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END;
$$;

-- Retention: drops the daily partitions of days before p_before; returns how many.
CREATE FUNCTION drop_agent_position_partitions_before(p_before date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r        record;
    dropped  integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('akig.agent_positions.partitions'));
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'agent_positions'::regclass
          AND c.relname ~ '^agent_positions_p[0-9]{8}$'
          AND to_date(substr(c.relname, 18), 'YYYYMMDD') < p_before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END;
$$;

-- A window around the migration date; the positions job extends it every day.
SELECT ensure_agent_position_partitions(
    (now() AT TIME ZONE 'UTC')::date - 7,
    (now() AT TIME ZONE 'UTC')::date + 30);

-- Latest fix per agent (the live map's snapshot) and the ack cursor of the stream.
CREATE TABLE agent_last_positions (
    agent_id          uuid PRIMARY KEY,
    -- Highest sequence number persisted for this agent: what acks carry.
    max_sequence      bigint NOT NULL,
    -- The fix with the latest fix_time (not necessarily the highest sequence).
    sequence          bigint NOT NULL,
    latitude          double precision NOT NULL,
    longitude         double precision NOT NULL,
    accuracy_m        real,
    speed_mps         real,
    heading_deg       real,
    battery_percent   smallint,
    is_mock_location  boolean NOT NULL DEFAULT false,
    fix_time          timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_last_positions_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT agent_last_positions_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT agent_last_positions_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT agent_last_positions_battery_range CHECK (battery_percent BETWEEN 0 AND 100)
);
CREATE TRIGGER agent_last_positions_set_updated_at BEFORE UPDATE ON agent_last_positions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
