-- When a person last gave a mission to another agent (UpdateMission), or NULL. A planned
-- mission a person reassigned is kept by later generations of its day, as one a person
-- cancelled is: the generator never undoes a deliberate choice.
ALTER TABLE missions ADD COLUMN reassigned_at timestamptz;
