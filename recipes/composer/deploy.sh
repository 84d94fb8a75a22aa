#!/usr/bin/env bash
# Cloud Composer 3 (an Airflow 3 build): installs airflow-mlops[gcp], sets the variables the gcp
# cloud profile reads, and copies dags/ into the environment's bucket. Each `environments update`
# restarts the Airflow components; a package conflict fails the update and the environment keeps
# its previous packages. Usage: deploy.sh ENVIRONMENT LOCATION
set -euo pipefail
env_name="$1"
location="$2"
here="$(cd "$(dirname "$0")" && pwd)"

# PEP 508 lines only (lowercase name, optional extras and version): Composer reads no pip options,
# so no --constraint: the environment's preinstalled packages are the constraints.
gcloud composer environments update "$env_name" --location "$location" \
    --update-pypi-packages-from-file "$here/pypi-packages.txt"

# No secrets here: the environment's service account is the identity; Airflow connections come
# from Secret Manager. Replace the example project, bucket and MLflow URL.
gcloud composer environments update "$env_name" --location "$location" \
    --update-env-variables="MLOPS_HOME=/home/airflow/gcs/data/mlops,MLOPS_LOCAL_DIR=/tmp/mlops,MLOPS_CLOUDS_FILE=/home/airflow/gcs/dags/mlops/clouds.yaml,MLOPS_GCP_PROJECT=example-project,MLOPS_GCP_LOCATION=europe-west4,MLOPS_GCP_LAKE=gs://example-mlops-bucket/lake,MLOPS_GCP_LANDING=gs://example-mlops-bucket/landing,MLOPS_GCP_TRAINING_BACKEND=in_worker,MLOPS_GCP_DEPLOY_TARGET=local,MLFLOW_TRACKING_URI=https://mlflow.example.internal"

# The bucket's dags/ folder is what every Airflow component sees as /home/airflow/gcs/dags.
gcloud composer environments storage dags import --environment "$env_name" --location "$location" \
    --source "$here/dags/mlops_pipelines.py"
gcloud composer environments storage dags import --environment "$env_name" --location "$location" \
    --source "$here/dags/pipelines"
gcloud composer environments storage dags import --environment "$env_name" --location "$location" \
    --source "$here/dags/mlops"
