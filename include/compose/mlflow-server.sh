#!/bin/sh
# Starts the MLflow tracking server behind MLflow's basic-auth app, with every credential read from
# Docker secrets: its own PostgreSQL role (not Airflow's), the scoped MinIO user created by
# minio-init.sh (not the root keys), the bootstrap admin password and the Flask secret key.
# Secrets go to the server through its environment and a 0600 file under /tmp, never argv.
set -eu
s=${SECRETS_DIR:-/run/secrets}
db_password=$(cat "$s/mlflow_db_password")

export MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:${db_password}@postgres:5432/mlflow"
export AWS_ACCESS_KEY_ID="$(cat "$s/mlflow_s3_access_key")"
export AWS_SECRET_ACCESS_KEY="$(cat "$s/mlflow_s3_secret_key")"
export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_ADMIN_USERNAME:-admin}"
export MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$s/mlflow_admin_password")"
export MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$s/mlflow_flask_secret_key")"

# The auth app's user store lives in PostgreSQL (database mlflow_auth, see initdb/10-mlflow.sh);
# new users may read what others create and nothing more until granted.
umask 077
export MLFLOW_AUTH_CONFIG_PATH=/tmp/mlflow_basic_auth.ini
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = postgresql://mlflow:${db_password}@postgres:5432/mlflow_auth
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI

# MLflow's GenAI job runner (a runner and four huey consumers) stays off unless asked for: the
# package submits no MLflow jobs.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

# --serve-artifacts proxies artifacts to MinIO, so clients need no S3 credentials.
# --allowed-hosts: MLflow rejects Host headers other than localhost/private IPs by default.
exec mlflow server \
    --app-name basic-auth \
    --host 0.0.0.0 \
    --port 5000 \
    --artifacts-destination "s3://${MLFLOW_BUCKET:-mlflow}" \
    --serve-artifacts \
    --allowed-hosts "mlflow:5000,localhost:5000,127.0.0.1:5000"
