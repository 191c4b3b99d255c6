-- Live positions: the altitude the phones send, and the look-up that tells a resent position
-- (same agent and sequence, same fix) from a conflicting one (same sequence, another fix):
-- the unique key holds fix_time (the partition key), so (agent_id, sequence) alone is indexed
-- here. Only sequences at or below the agent's max_sequence are looked up.

ALTER TABLE agent_positions ADD COLUMN altitude_m real;
ALTER TABLE agent_last_positions ADD COLUMN altitude_m real;

CREATE INDEX agent_positions_agent_sequence_idx ON agent_positions (agent_id, sequence);
