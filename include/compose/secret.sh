#!/bin/sh
# Prints a Docker secret without its trailing newline, optionally wrapped in a prefix and a suffix:
#   sh secret.sh /run/secrets/postgres_password 'postgresql+psycopg2://airflow:' '@postgres:5432/airflow'
# Airflow reads sensitive options through AIRFLOW__<SECTION>__<KEY>_CMD, so the value (a password or
# a URL holding one) never sits in a container's environment or in `docker inspect`.
# check_secrets.py allows only [A-Za-z0-9_-] in secrets, so they need no URL or shell quoting.
set -eu
value=$(cat "$1")
printf '%s%s%s' "${2:-}" "$value" "${3:-}"
