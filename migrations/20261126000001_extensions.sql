-- Extensions, shared helper functions and the French full-text configuration.
-- gen_random_uuid() is built into PostgreSQL 13+, so pgcrypto is not needed.

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Reusable trigger: touch updated_at on every UPDATE unless the statement set it
-- explicitly (imports and the demo seed write their own deterministic values).
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

-- Reusable trigger for append-only tables: refuse UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION forbid_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$;

-- unaccent() is only STABLE (it reads its dictionary through the search path);
-- pinning the dictionary makes this wrapper safe to use in indexes and generated columns.
CREATE FUNCTION immutable_unaccent(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;

-- French stemming that ignores accents: "Aïssatou" matches "aissatou", "Keïta" matches "keita".
CREATE TEXT SEARCH CONFIGURATION french_unaccent (COPY = pg_catalog.french);
ALTER TEXT SEARCH CONFIGURATION french_unaccent
    ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, french_stem;
