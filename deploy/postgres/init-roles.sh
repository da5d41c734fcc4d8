#!/bin/sh
# Run once by the postgres image on first start (empty data volume): one
# database per service that owns data, each owned by that service's own role
# (password from <SERVICE>_DB_PASSWORD), and nobody else may connect to it.
# expiration keeps its state in RabbitMQ and has none.
set -e  # (no -u: the postgres entrypoint sources a script that is not executable)
prefix=${TICKETING_DB_PREFIX:-ticketing_}
for service in auth tickets orders payments confirmation; do
  password=$(printenv "$(echo "$service" | tr a-z A-Z)_DB_PASSWORD")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v role="$prefix$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
