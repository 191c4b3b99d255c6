-- Agents read payments: GetPayment and ListPayments show an agent only the payments they
-- collected (scope "own", server/api/collections/payments.rs and server/store/payments.rs),
-- so an agent can read back the receipt of a payment they just recorded.
INSERT INTO role_permissions (role_id, permission_id)
VALUES ('agent', 'collections.payments.read')
ON CONFLICT DO NOTHING;
