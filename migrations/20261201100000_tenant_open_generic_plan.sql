-- charges_tenant_open (ADR 0011, read model 4) keeps one generic plan per connection instead
-- of being planned again at every call, as the other read-model helpers do since
-- 20261201090100.
--
-- Its two statements over the array of touched tenants (the lock of their rows, and the
-- upsert of `tenant_open` from tenant_open_of(ids), an SQL function inlined into it) were
-- planned at each call: plpgsql's plan cache compares the generic plan, which estimates 10
-- elements for an array parameter, with custom plans that know it holds one or two, and kept
-- choosing custom ones. pg_stat_statements (track = all, track_planning = on), RecordPayment
-- through the server on the demo data, 4 callers: 3,209 calls, 3,218 plans, 0.86 ms of
-- planning a call against 0.21 ms of execution for the upsert, 0.16 ms against 0.02 ms for
-- the lock. Each UPDATE of `charges` that changes what a tenant owes runs them once.
--
-- The generic plans (EXPLAIN with plan_cache_mode = force_generic_plan) are what the custom
-- ones were: the tenants by primary key from the array's elements, then each tenant's open
-- charges by index, so a large array (a bulk load) costs in proportion to its length.

ALTER FUNCTION charges_tenant_open() SET plan_cache_mode = 'force_generic_plan';
