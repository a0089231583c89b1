#!/usr/bin/env bash
# Patroni's post_bootstrap: runs once, as postgres, on the member that creates
# the cluster, with a superuser connection string as its argument. Creates the
# app role, HAProxy's check role, the database, the table and the seed rows.
set -euo pipefail

: "${1:?usage: bootstrap.sh CONNSTRING}" "${APP_PASSWORD:?}" "${SEED_ROWS:?}"

psql "$1" -v ON_ERROR_STOP=1 -q -v app_pw="$APP_PASSWORD" -v rows="$SEED_ROWS" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_pw';
CREATE ROLE haproxy_check LOGIN;
CREATE DATABASE haproxy_check;
CREATE DATABASE hastack OWNER app;
\connect hastack
SET ROLE app;
CREATE TABLE items (
  id         bigserial PRIMARY KEY,
  payload    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The write's idempotency key: a repeated POST returns its first row.
  request_id text UNIQUE
);
INSERT INTO items (payload) SELECT 'seed-' || g FROM generate_series(1, :rows) AS g;
SQL
