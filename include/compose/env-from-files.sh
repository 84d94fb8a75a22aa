#!/bin/sh
# Entrypoint wrapper for programs that read a secret only from an environment variable (the MLflow
# client reads MLFLOW_TRACKING_PASSWORD): for every NAME_FILE=/run/secrets/x it exports NAME with
# the file's content, drops NAME_FILE, then execs the real entrypoint ("$@").
set -eu
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=.*/\1/p'); do
    eval "file=\${${name}_FILE}"
    # shellcheck disable=SC2154  # set by the eval above
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done
exec "$@"
