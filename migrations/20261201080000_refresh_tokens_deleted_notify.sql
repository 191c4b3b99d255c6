-- A session deleted while it was active (by hand: the purge deletes ended sessions only) ends
-- its access tokens: the standing listeners are told, as for a revocation. One statement-level
-- trigger, so that a purge of many rows costs one scan of what it deleted and at most one
-- announcement per user whose active session went (PostgreSQL folds identical notifications
-- of one transaction).
CREATE FUNCTION refresh_tokens_deleted_notify_standing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('akig_standing', user_id::text)
    FROM (SELECT DISTINCT user_id FROM gone WHERE revoked_at IS NULL) AS active;
    RETURN NULL;
END;
$$;

CREATE TRIGGER refresh_tokens_deleted_notify_standing AFTER DELETE ON refresh_tokens
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT
    EXECUTE FUNCTION refresh_tokens_deleted_notify_standing();
