-- Replicas that hold callers' standings in process (ADR 0015), each under a lease it renews
-- from its listener while it listens to `akig_standing`; and the acknowledgements of standing
-- syncs: a replica writes one once its listener has passed the sync's notification, so every
-- change announced before it has reached its in-process standings.
CREATE TABLE standing_replicas (
    replica_id  uuid PRIMARY KEY,
    lease_until timestamptz NOT NULL
);

CREATE TABLE standing_sync_acks (
    token      uuid NOT NULL,
    replica_id uuid NOT NULL,
    acked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (token, replica_id)
);
