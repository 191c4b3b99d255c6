-- Tenant search: a unit typed without its accents or in part ("batiment b", "appt 12") is
-- matched on the unaccented, lower-case unit; the trigram index serves LIKE '%word%'.
CREATE INDEX tenants_unit_trgm_idx ON tenants USING gin (immutable_unaccent(lower(unit)) gin_trgm_ops);
