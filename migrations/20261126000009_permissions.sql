-- RBAC catalogue: the 40 permissions and the grants of the six roles, as data.
--
-- Every akig.v1 RPC maps to exactly one permission in Rust (server/auth/rbac.rs,
-- METHOD_PERMISSIONS); an RPC without a mapping is refused. Two permissions have no RPC of their
-- own and are checked inside one: users.disable (UpdateUser changing `disabled`) and
-- missions.reassign (UpdateMission changing `agent_id`). Grants say what a role may do; the
-- object scope (own sites, own team, own records) is enforced separately.
-- Matrix and how to add an RPC: docs/rbac.md. Later changes go in new migrations.

INSERT INTO permissions (id, description) VALUES
    -- AuthService: the caller's own session.
    ('auth.self.read',               'Voir son propre compte, son rôle et ses permissions'),
    ('auth.self.logout',             'Se déconnecter (une session ou toutes)'),
    ('auth.self.password',           'Changer son propre mot de passe'),
    -- AuthService: administration.
    ('users.create',                 'Créer un utilisateur'),
    ('users.read',                   'Consulter les utilisateurs'),
    ('users.update',                 'Modifier un utilisateur'),
    ('users.disable',                'Désactiver ou réactiver un utilisateur'),
    ('users.reset_password',         'Réinitialiser le mot de passe d''un utilisateur'),
    ('roles.read',                   'Consulter les rôles et le catalogue des permissions'),
    ('roles.update',                 'Modifier les permissions d''un rôle'),
    ('audit.read',                   'Consulter le journal d''audit'),
    -- CollectionsService.
    ('collections.calls.record',     'Enregistrer un appel à un locataire'),
    ('collections.visits.record',    'Enregistrer une visite chez un locataire'),
    ('collections.payments.record',  'Enregistrer un paiement reçu'),
    ('collections.payments.reverse', 'Annuler un paiement (écriture d''extourne)'),
    ('collections.payments.read',    'Consulter les paiements et les annulations'),
    ('collections.promises.read',    'Consulter les promesses de paiement'),
    ('collections.promises.update',  'Reporter ou annuler une promesse de paiement'),
    ('collections.tenants.read',     'Consulter un locataire et son historique'),
    ('collections.tenants.search',   'Rechercher des locataires'),
    ('collections.arrears.read',     'Consulter les arriérés d''un locataire'),
    ('collections.stats.read',       'Consulter les statistiques du jour'),
    -- MissionsService.
    ('missions.generate',            'Générer les missions d''une journée'),
    ('missions.read',                'Consulter les missions'),
    ('missions.update',              'Mettre à jour une mission (statut, liens, arrivée)'),
    ('missions.reassign',            'Réaffecter une mission à un autre agent'),
    ('performance.read',             'Consulter la performance des agents'),
    ('rankings.read',                'Consulter les classements des agents'),
    -- GeoService.
    ('geo.markers.read',             'Voir les locataires en retard sur la carte'),
    ('geo.routes.optimize',          'Optimiser un itinéraire de visites'),
    ('geo.positions.report',         'Transmettre ses positions GPS (agent)'),
    ('geo.positions.read',           'Suivre les positions des agents en direct'),
    ('geo.tracks.read',              'Consulter le parcours d''un agent'),
    -- DashboardService.
    ('dashboard.summary.read',       'Consulter les indicateurs du tableau de bord'),
    ('dashboard.sites.read',         'Consulter les sites et leurs indicateurs'),
    ('dashboard.good_payers.read',   'Consulter les bons payeurs'),
    ('dashboard.reports.read',       'Consulter le rapport journalier'),
    ('dashboard.reports.export',     'Exporter le rapport journalier (CSV)'),
    ('dashboard.alerts.read',        'Consulter les alertes'),
    ('dashboard.alerts.acknowledge', 'Prendre en charge une alerte');

-- Grants. One block per role; a misspelt name fails the migration (foreign key).

-- Administrateur: everything (UpdateRolePermissions keeps it so).
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'admin', id FROM permissions;

-- Direction: every read, the whole dashboard (export, alert handling), own session.
-- No write on collections or missions, no user or role administration.
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'director', p FROM unnest(ARRAY[
    'auth.self.read', 'auth.self.logout', 'auth.self.password',
    'users.read', 'roles.read', 'audit.read',
    'collections.payments.read', 'collections.promises.read', 'collections.tenants.read',
    'collections.tenants.search', 'collections.arrears.read', 'collections.stats.read',
    'missions.read', 'performance.read', 'rankings.read',
    'geo.markers.read', 'geo.positions.read', 'geo.tracks.read',
    'dashboard.summary.read', 'dashboard.sites.read', 'dashboard.good_payers.read',
    'dashboard.reports.read', 'dashboard.reports.export',
    'dashboard.alerts.read', 'dashboard.alerts.acknowledge'
]) AS p;

-- Gestionnaire de site: runs the collection of own sites: missions, promises, live map,
-- the whole dashboard.
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'site_manager', p FROM unnest(ARRAY[
    'auth.self.read', 'auth.self.logout', 'auth.self.password',
    'users.read',
    'collections.payments.read', 'collections.promises.read', 'collections.promises.update',
    'collections.tenants.read', 'collections.tenants.search', 'collections.arrears.read',
    'collections.stats.read',
    'missions.generate', 'missions.read', 'missions.update', 'missions.reassign',
    'performance.read', 'rankings.read',
    'geo.markers.read', 'geo.routes.optimize', 'geo.positions.read', 'geo.tracks.read',
    'dashboard.summary.read', 'dashboard.sites.read', 'dashboard.good_payers.read',
    'dashboard.reports.read', 'dashboard.reports.export',
    'dashboard.alerts.read', 'dashboard.alerts.acknowledge'
]) AS p;

-- Superviseur: leads a team of agents: missions, promises, reversal of a wrong payment,
-- live map, the day's figures and alerts.
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'supervisor', p FROM unnest(ARRAY[
    'auth.self.read', 'auth.self.logout', 'auth.self.password',
    'users.read',
    'collections.payments.read', 'collections.payments.reverse',
    'collections.promises.read', 'collections.promises.update',
    'collections.tenants.read', 'collections.tenants.search', 'collections.arrears.read',
    'collections.stats.read',
    'missions.generate', 'missions.read', 'missions.update', 'missions.reassign',
    'performance.read', 'rankings.read',
    'geo.markers.read', 'geo.routes.optimize', 'geo.positions.read', 'geo.tracks.read',
    'dashboard.summary.read', 'dashboard.sites.read', 'dashboard.reports.read',
    'dashboard.alerts.read', 'dashboard.alerts.acknowledge'
]) AS p;

-- Agent de recouvrement: field work on own missions and assigned tenants.
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'agent', p FROM unnest(ARRAY[
    'auth.self.read', 'auth.self.logout', 'auth.self.password',
    'collections.calls.record', 'collections.visits.record', 'collections.payments.record',
    'collections.promises.read', 'collections.promises.update',
    'collections.tenants.read', 'collections.tenants.search', 'collections.arrears.read',
    'collections.stats.read',
    'missions.read', 'missions.update',
    'performance.read', 'rankings.read',
    'geo.markers.read', 'geo.routes.optimize', 'geo.positions.report'
]) AS p;

-- Comptable: payments and reversals, tenant balances, financial reports.
INSERT INTO role_permissions (role_id, permission_id)
SELECT 'accountant', p FROM unnest(ARRAY[
    'auth.self.read', 'auth.self.logout', 'auth.self.password',
    'collections.payments.read', 'collections.payments.reverse',
    'collections.tenants.read', 'collections.tenants.search', 'collections.arrears.read',
    'collections.stats.read',
    'dashboard.summary.read', 'dashboard.sites.read', 'dashboard.good_payers.read',
    'dashboard.reports.read', 'dashboard.reports.export'
]) AS p;
