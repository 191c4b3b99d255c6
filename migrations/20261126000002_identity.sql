-- Identity and access: roles, permissions, users, refresh tokens, sites and who covers them.

CREATE TABLE roles (
    id          text PRIMARY KEY,
    label_fr    text NOT NULL,
    CONSTRAINT roles_id_format CHECK (id ~ '^[a-z][a-z_]{1,31}$')
);

INSERT INTO roles (id, label_fr) VALUES
    ('admin',        'Administrateur'),
    ('director',     'Direction'),
    ('site_manager', 'Gestionnaire de site'),
    ('supervisor',   'Superviseur'),
    ('agent',        'Agent de recouvrement'),
    ('accountant',   'Comptable');

-- Catalogue of permissions ("collections.payments.record", ...). Filled, with the grants,
-- by a later migration: the RBAC table lives as data.
CREATE TABLE permissions (
    id          text PRIMARY KEY,
    description text NOT NULL,
    CONSTRAINT permissions_id_format CHECK (id ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$')
);

CREATE TABLE role_permissions (
    role_id       text NOT NULL,
    permission_id text NOT NULL,
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role_id, permission_id),
    CONSTRAINT role_permissions_role_id_fkey FOREIGN KEY (role_id)
        REFERENCES roles (id) ON DELETE CASCADE,
    CONSTRAINT role_permissions_permission_id_fkey FOREIGN KEY (permission_id)
        REFERENCES permissions (id) ON DELETE CASCADE
);
CREATE INDEX role_permissions_permission_id_idx ON role_permissions (permission_id);

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username       text NOT NULL,
    phone          text,
    full_name      text NOT NULL,
    password_hash  text,
    role_id        text NOT NULL,
    supervisor_id  uuid,
    disabled       boolean NOT NULL DEFAULT false,
    -- Bumped on password change, role change and disable: every RPC checks the token's copy.
    token_version  integer NOT NULL DEFAULT 0,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_role_id_fkey FOREIGN KEY (role_id) REFERENCES roles (id),
    CONSTRAINT users_supervisor_id_fkey FOREIGN KEY (supervisor_id) REFERENCES users (id),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$'),
    CONSTRAINT users_full_name_not_blank CHECK (btrim(full_name) <> ''),
    CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    CONSTRAINT users_supervisor_not_self CHECK (supervisor_id <> id),
    CONSTRAINT users_token_version_nonnegative CHECK (token_version >= 0)
);
-- Usernames are unique whatever their case.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_supervisor_id_idx ON users (supervisor_id) WHERE supervisor_id IS NOT NULL;
CREATE INDEX users_role_id_idx ON users (role_id);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Opaque refresh tokens, stored hashed, rotated on every use. Reusing a consumed token
-- revokes its whole family.
CREATE TABLE refresh_tokens (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id          uuid NOT NULL,
    user_id            uuid NOT NULL,
    token_hash         bytea NOT NULL,
    parent_id          uuid,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    family_expires_at  timestamptz NOT NULL,
    consumed_at        timestamptz,
    replaced_by        uuid,
    revoked_at         timestamptz,
    revoke_reason      text,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_parent_id_fkey FOREIGN KEY (parent_id)
        REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    CONSTRAINT refresh_tokens_replaced_by_fkey FOREIGN KEY (replaced_by)
        REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    CONSTRAINT refresh_tokens_expiry_order CHECK (expires_at > issued_at AND family_expires_at >= expires_at),
    CONSTRAINT refresh_tokens_revoke_reason_with_revoked_at
        CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_expires_at_idx ON refresh_tokens (family_expires_at);

-- Sites (properties / estates). The code is the receipt prefix (KAL-2026-000123).
CREATE TABLE sites (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code          text NOT NULL,
    name          text NOT NULL,
    commune       text NOT NULL,
    address       text NOT NULL DEFAULT '',
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    kind          text NOT NULL,
    is_sensitive  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sites_code_key UNIQUE (code),
    CONSTRAINT sites_code_format CHECK (code ~ '^[A-Z]{3,4}$'),
    CONSTRAINT sites_name_not_blank CHECK (btrim(name) <> ''),
    -- The five communes of Conakry. A new commune is a one-line migration that replaces this check.
    CONSTRAINT sites_commune_known CHECK (commune IN ('Kaloum', 'Dixinn', 'Matam', 'Ratoma', 'Matoto')),
    CONSTRAINT sites_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT sites_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT sites_kind_known CHECK (kind IN ('residential', 'commercial', 'mixed'))
);
-- "Sites by type" of the original system (idx_sites_type_retards) and the sensitive filter.
CREATE INDEX sites_kind_sensitive_idx ON sites (kind, is_sensitive);
CREATE TRIGGER sites_set_updated_at BEFORE UPDATE ON sites
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The sites an agent or site manager covers (object scope).
CREATE TABLE user_sites (
    user_id  uuid NOT NULL,
    site_id  uuid NOT NULL,
    CONSTRAINT user_sites_pkey PRIMARY KEY (user_id, site_id),
    CONSTRAINT user_sites_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_sites_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id) ON DELETE CASCADE
);
CREATE INDEX user_sites_site_id_idx ON user_sites (site_id);
