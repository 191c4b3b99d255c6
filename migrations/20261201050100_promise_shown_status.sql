-- The status a promise shows on a day, as `domain::promise::shown_status` decides it: a stored
-- final status stands; a pending one is derived from the payments (`promise_status_on`).
-- A single expression, so PostgreSQL inlines it into the calling statement: a settled
-- promise, most of them, costs no call and no read of the payments (`promise_status_on` read
-- them for every promise, whatever its status).
CREATE FUNCTION promise_shown_status(p_status text, p_promise_id uuid, p_today date)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_status <> 'pending' THEN p_status
                ELSE promise_status_on(p_promise_id, p_today) END
$$;
