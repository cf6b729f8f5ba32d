-- Schema version 3: virtual folders. The users' `virtual_folders` (SFTPGo 1.x's JSON list
-- of {virtual_path, mapped_path, quota_size, quota_files}; NULL = none) and the folders
-- table beside the users table (`<users_table>_folders`). Apply after 20261206.sql; the
-- server does the same at start when they are missing.
ALTER TABLE users ADD COLUMN virtual_folders text NULL;
CREATE TABLE IF NOT EXISTS users_folders ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, mapped_path varchar(512) NOT NULL UNIQUE, used_quota_size bigint NOT NULL, used_quota_files integer NOT NULL, last_quota_update bigint NOT NULL, filesystem text NULL);
UPDATE schema_version SET version = 3 WHERE id = 1 AND version < 3;
