-- Mission failure reasons are a closed vocabulary (domain::mission::FailureReason) that the
-- store decodes. The demo seed used to write the interaction outcome 'absent' there, which the
-- API showed as UNSPECIFIED: it is the reason TENANT_ABSENT. Anything else unknown becomes
-- 'other'. From now on the table refuses a reason outside the vocabulary, as it does for
-- arrival_source.
UPDATE missions SET failure_reason = 'tenant_absent' WHERE failure_reason = 'absent';

UPDATE missions SET failure_reason = 'other'
 WHERE failure_reason NOT IN ('tenant_absent', 'refused', 'tenant_moved', 'address_not_found',
                              'unsafe', 'no_time', 'other');

ALTER TABLE missions
    ADD CONSTRAINT missions_failure_reason_known CHECK (failure_reason IN (
        'tenant_absent', 'refused', 'tenant_moved', 'address_not_found', 'unsafe', 'no_time',
        'other'));
