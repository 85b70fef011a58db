-- WeCom user ids are unique regardless of letter case. The key is the id
-- case-folded by the server in Rust (`operator_accounts::store::wecom_key`),
-- the same on both databases: SQLite's lower() folds ASCII only, and
-- PostgreSQL's follows the database's locale. Rows from before this migration
-- get their key when the server starts (`store::fill_wecom_keys`); until then
-- it is NULL, which the unique index does not compare.
ALTER TABLE operator_accounts ADD COLUMN wecom_user_key TEXT;
CREATE UNIQUE INDEX operator_accounts_wecom_user_key ON operator_accounts (wecom_user_key);
