-- The `scale` profile's own databases on the shared PostgreSQL server (DB_NAME_PREFIX=scale_), so the scaled
-- stack never shares identity or outbox rows with the default one. Idempotent: \gexec runs only what is missing.
SELECT 'CREATE DATABASE scale_auth' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'scale_auth')\gexec
SELECT 'CREATE DATABASE scale_main' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'scale_main')\gexec
