-- Every change to what the per-call check of a user's standing reads is announced on the
-- channel `akig_standing`, with the id of each user whose standing changed: token version,
-- disabled flag, role, supervisor (a supervisor covers the sites of their team), sites, and
-- the revocation of a session. Each server replica listens and moves that user's epoch in the
-- shared cache (server/auth/standing.rs), so a cached standing is dropped whoever made the
-- change: a handler, the command line or plain SQL. PostgreSQL sends a transaction's
-- notifications at its commit, in commit order, and folds identical ones into one.

-- A user's standing, and their supervisor's.
CREATE FUNCTION notify_standing_of_member(member uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    supervisor uuid;
BEGIN
    PERFORM pg_notify('akig_standing', member::text);
    SELECT supervisor_id INTO supervisor FROM users WHERE id = member;
    IF supervisor IS NOT NULL THEN
        PERFORM pg_notify('akig_standing', supervisor::text);
    END IF;
END;
$$;

CREATE FUNCTION users_notify_standing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('akig_standing', OLD.id::text);
    -- A member who leaves a team, or joins one, changes the sites of its supervisor.
    IF OLD.supervisor_id IS NOT NULL
       AND (TG_OP = 'DELETE' OR OLD.supervisor_id IS DISTINCT FROM NEW.supervisor_id) THEN
        PERFORM pg_notify('akig_standing', OLD.supervisor_id::text);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.supervisor_id IS DISTINCT FROM OLD.supervisor_id
       AND NEW.supervisor_id IS NOT NULL THEN
        PERFORM pg_notify('akig_standing', NEW.supervisor_id::text);
    END IF;
    RETURN NULL;
END;
$$;

-- Not on other columns: a login's `last_login_at` must not drop the user's cached standing.
CREATE TRIGGER users_notify_standing AFTER UPDATE ON users
    FOR EACH ROW
    WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version
          OR OLD.disabled IS DISTINCT FROM NEW.disabled
          OR OLD.role_id IS DISTINCT FROM NEW.role_id
          OR OLD.supervisor_id IS DISTINCT FROM NEW.supervisor_id)
    EXECUTE FUNCTION users_notify_standing();

CREATE TRIGGER users_deleted_notify_standing AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_notify_standing();

CREATE FUNCTION user_sites_notify_standing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM notify_standing_of_member(OLD.user_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM notify_standing_of_member(NEW.user_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER user_sites_notify_standing AFTER INSERT OR UPDATE OR DELETE ON user_sites
    FOR EACH ROW EXECUTE FUNCTION user_sites_notify_standing();

-- A session is revoked (logout, reuse of a refresh token, password change, disabling).
-- Deleting ended sessions (the purge) changes nothing a valid token could use.
CREATE FUNCTION refresh_tokens_notify_standing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('akig_standing', NEW.user_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER refresh_tokens_notify_standing AFTER UPDATE OF revoked_at ON refresh_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION refresh_tokens_notify_standing();
