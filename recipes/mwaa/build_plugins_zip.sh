#!/usr/bin/env bash
# Builds plugins.zip for an MWAA environment whose components cannot reach PyPI (private web
# server, no NAT): every wheel airflow-mlops[aws] needs on MWAA 3.3.1 (Amazon Linux 2023,
# Python 3.12, x86_64), resolved with the same constraints as requirements.txt.
# Run it on any machine that reaches PyPI; upload plugins.zip and requirements-private.txt.
# The Airflow plugin itself needs no file in the zip: it is registered by the package's
# `airflow.plugins` entry point and loads once the wheel is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/plugins.zip}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download \
    --dest "$work/plugins" \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --python-version 3.12 --implementation cp --only-binary=:all: \
    --constraint "$here/dags/mlops/constraints-3.3.1-py3.12-mlops.txt" \
    "airflow-mlops[aws]"

# MWAA unpacks plugins.zip into /usr/local/airflow/plugins: the wheels must sit at the zip's root.
(cd "$work/plugins" && zip -q -r "$out" .)
echo "wrote $out ($(find "$work/plugins" -name '*.whl' | wc -l) wheels)"
