-- sftpgo schema for PostgreSQL (SFTPGo 0.9's users table layout; home_dir widened to 4096).
-- The server creates the same tables at start when they are missing; this file is for
-- administrators who create schemas by hand. Rename "users" to match data_provider.users_table.
BEGIN;
CREATE TABLE IF NOT EXISTS "users" ("id" serial NOT NULL PRIMARY KEY, "username" varchar(255) NOT NULL UNIQUE, "password" varchar(255) NULL, "public_keys" text NULL, "home_dir" varchar(4096) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL, "max_sessions" integer NOT NULL, "quota_size" bigint NOT NULL, "quota_files" integer NOT NULL, "permissions" text NOT NULL, "used_quota_size" bigint NOT NULL, "used_quota_files" integer NOT NULL, "last_quota_update" bigint NOT NULL, "upload_bandwidth" integer NOT NULL, "download_bandwidth" integer NOT NULL);
CREATE TABLE IF NOT EXISTS "schema_version" ("id" integer NOT NULL PRIMARY KEY CHECK ("id" = 1), "version" integer NOT NULL);
INSERT INTO "schema_version" ("id", "version") VALUES (1, 1) ON CONFLICT ("id") DO NOTHING;
COMMIT;
