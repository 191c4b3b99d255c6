-- A visit whose fix the phone flagged as mocked is far away, whatever its distance: the server
-- always stored it so, the demo seed of earlier versions did not. Mend those rows, then hold
-- the rule in the table, so SQL reading `is_far_from_tenant` alone is right.
UPDATE interactions SET is_far_from_tenant = true
WHERE is_mock_location AND NOT is_far_from_tenant;

ALTER TABLE interactions
    ADD CONSTRAINT interactions_mock_location_is_far
    CHECK (NOT is_mock_location OR is_far_from_tenant);
