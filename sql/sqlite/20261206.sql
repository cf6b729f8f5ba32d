-- Schema version 2: where a user's files live (SFTPGo 1.x's `filesystem` JSON; NULL = the
-- local home dir). Apply after 20190828.sql; the server does the same at start when the
-- column is missing.
ALTER TABLE users ADD COLUMN filesystem text NULL;
UPDATE schema_version SET version = 2 WHERE id = 1 AND version < 2;
