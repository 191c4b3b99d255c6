-- The search's first tier (every word of the query matched) lists tenants alphabetically by
-- their normalised name, then id, and pages by that key: this index walks that order, so a
-- common surname's first page reads about a page of matches instead of sorting them all.
-- Additive: no data changes.
CREATE INDEX tenants_name_norm_id_idx ON tenants (name_norm, id);

ANALYZE tenants;
