#!/bin/sh
# Run once by the postgres image on an empty data volume (sourced by its entrypoint as the postgres
# user). MLflow gets its own login role, owner of its two databases (the tracking store `mlflow`
# and the basic-auth user store `mlflow_auth`), so the MLflow server never holds the password of
# the Airflow metadata database, and the role cannot connect to that database.
# An existing volume does not re-run this: create the role by hand (see README, Security).
# Sourced (not executed) by the entrypoint, which already runs with `set -e`: no `set` here.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v mlflow_password="$(cat /run/secrets/mlflow_db_password)" -v airflow_db="$POSTGRES_DB" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
REVOKE CONNECT ON DATABASE :"airflow_db" FROM PUBLIC;
SQL
