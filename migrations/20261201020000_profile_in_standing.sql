-- The cached standing of a call now carries the user's profile too (WhoAmI answers from it,
-- ADR 0009), so a change of the profile is announced like a change of the standing: the
-- trigger of migration 20261126000020 fires on the profile's columns as well, the login time
-- included (a login moves only that user's epoch; their other sessions read PostgreSQL once).
DROP TRIGGER users_notify_standing ON users;

CREATE TRIGGER users_notify_standing AFTER UPDATE ON users
    FOR EACH ROW
    WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version
          OR OLD.disabled IS DISTINCT FROM NEW.disabled
          OR OLD.role_id IS DISTINCT FROM NEW.role_id
          OR OLD.supervisor_id IS DISTINCT FROM NEW.supervisor_id
          OR OLD.username IS DISTINCT FROM NEW.username
          OR OLD.full_name IS DISTINCT FROM NEW.full_name
          OR OLD.phone IS DISTINCT FROM NEW.phone
          OR OLD.last_login_at IS DISTINCT FROM NEW.last_login_at
          OR OLD.must_change_password IS DISTINCT FROM NEW.must_change_password
          OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION users_notify_standing();
