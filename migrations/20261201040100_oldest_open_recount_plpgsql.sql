-- tenant_oldest_open_recount, which the `charges` triggers call (ADR 0011), becomes plpgsql, so
-- each connection plans its statement once and keeps the plan: as an SQL function that is not
-- inlined (its body writes), it was parsed and planned again on every call. The statement is
-- unchanged. Measured on the demo data, 400 calls on one tenant each in one transaction, two
-- runs each: 392-404 ms as SQL, 307-340 ms as plpgsql.
--
-- charges_paid_by_due_recount stays an SQL function: as plpgsql, the same measurement on one
-- charge each gave 1,634-1,887 ms against 1,330-1,382 ms as SQL (the cached generic plan does
-- not know the array's length).

CREATE OR REPLACE FUNCTION tenant_oldest_open_recount(tenant_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH fresh AS (
        SELECT t.id AS tenant_id, t.site_id,
               min(c.due_date) FILTER (WHERE c.amount_paid_gnf < c.amount_due_gnf) AS oldest
        FROM (SELECT DISTINCT unnest(tenant_ids) AS id) u
        JOIN tenants t ON t.id = u.id
        LEFT JOIN charges c ON c.tenant_id = t.id
        GROUP BY t.id, t.site_id
    ), prev AS (
        SELECT o.tenant_id, o.site_id, o.oldest_due FROM tenant_oldest_open o
        JOIN (SELECT DISTINCT unnest(tenant_ids) AS id) u ON u.id = o.tenant_id
    ), changed AS (
        SELECT f.tenant_id, p.site_id AS old_site, p.oldest_due AS old_due,
               f.site_id AS new_site, f.oldest AS new_due
        FROM fresh f LEFT JOIN prev p USING (tenant_id)
        WHERE (p.oldest_due, p.site_id) IS DISTINCT FROM (f.oldest, f.site_id)
          AND NOT (p.tenant_id IS NULL AND f.oldest IS NULL)
    ), removed AS (
        DELETE FROM tenant_oldest_open o USING changed ch
        WHERE o.tenant_id = ch.tenant_id AND ch.new_due IS NULL
    ), kept AS (
        INSERT INTO tenant_oldest_open AS o (tenant_id, site_id, oldest_due)
        SELECT tenant_id, new_site, new_due FROM changed WHERE new_due IS NOT NULL
        ORDER BY tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET site_id = excluded.site_id,
                                              oldest_due = excluded.oldest_due
    )
    INSERT INTO arrears_oldest AS a (site_id, due_date, shard, tenants)
    SELECT site_id, due_date, shard, sum(n)
    FROM (SELECT old_site AS site_id, old_due AS due_date, tenant_shard(tenant_id) AS shard, -1 AS n
          FROM changed WHERE old_due IS NOT NULL
          UNION ALL
          SELECT new_site, new_due, tenant_shard(tenant_id), 1
          FROM changed WHERE new_due IS NOT NULL) d
    GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (site_id, due_date, shard) DO UPDATE SET tenants = a.tenants + excluded.tenants;
END;
$$;
