-- Set by CreateUser and ResetPassword (an administrator chose the password), cleared when the
-- user sets their own: the apps then show the change-password screen first.
ALTER TABLE users ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;
