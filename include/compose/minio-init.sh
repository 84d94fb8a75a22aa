#!/bin/sh
# One-shot, idempotent: creates the MLflow artifact bucket and a MinIO user for MLflow whose policy
# allows that bucket only, so the MLflow server never holds the MinIO root keys. Re-running it
# updates the user's secret key (rotation) and keeps the policy attached.
# Shell builtins only: the mc image is a minimal one (no cat, no grep).
set -eu
secret() {
    value=
    IFS= read -r value < "${SECRETS_DIR:-/run/secrets}/$1" || [ -n "$value" ]
    printf '%s' "$value"
}
root_user=$(secret minio_root_user)
root_password=$(secret minio_root_password)
access_key=$(secret mlflow_s3_access_key)
secret_key=$(secret mlflow_s3_secret_key)
bucket=${MLFLOW_BUCKET:-mlflow}
policy=mlflow-artifacts

# mc reads the alias from the environment: the root password stays out of the command line.
export MC_HOST_local="http://${root_user}:${root_password}@minio:9000"

mc mb --ignore-existing "local/${bucket}"

while IFS= read -r line; do printf '%s\n' "$line"; done > "${TMPDIR:-/tmp}/policy.json" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::${bucket}"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::${bucket}/*"]}
  ]
}
JSON
mc admin policy create local "$policy" "${TMPDIR:-/tmp}/policy.json"
mc admin user add local "$access_key" "$secret_key"
if ! out=$(mc admin policy attach local "$policy" --user "$access_key" 2>&1); then
    case "$out" in
        *already*) ;;  # attached by an earlier run
        *) echo "$out" >&2; exit 1 ;;
    esac
fi
echo "bucket ${bucket} and its scoped user are ready"
