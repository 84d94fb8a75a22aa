#!/usr/bin/env bash
# Amazon MWAA startup script: upload to the environment's bucket and set it as the startup script.
# MWAA sources it on every component (scheduler, workers, web server, dag processor) before it
# installs requirements.txt and starts Airflow, with a 5-minute limit. Only EXPORTED variables
# reach Airflow (MWAA captures the environment when the script ends); MWAA__* and the variables
# MWAA sets itself cannot be overridden here. Put no secrets in this file: credentials come from
# the environment's execution role (and Airflow connections in Secrets Manager).

# Where the package keeps scratch files (the worker's local disk; the lake itself is on S3).
export MLOPS_HOME="/usr/local/airflow"
export MLOPS_LOCAL_DIR="/tmp/mlops"
# Cloud profiles (which lake, connection, training backend and deploy target `cloud: aws` means).
export MLOPS_CLOUDS_FILE="/usr/local/airflow/dags/mlops/clouds.yaml"

# The aws profile of clouds.yaml reads these. Replace the example bucket, region and role.
export AWS_DEFAULT_REGION="eu-west-1"
export MLOPS_AWS_LAKE="s3://example-mlops-bucket/lake"
export MLOPS_AWS_LANDING="s3://example-mlops-bucket/landing"
export MLOPS_AWS_CONN_ID="aws_default"
export MLOPS_SAGEMAKER_ROLE_ARN="arn:aws:iam::123456789012:role/example-sagemaker-execution"
# Train inside the MWAA worker and deploy as the MLflow `champion` alias until a SageMaker
# training image and serving image are pushed (then remove these two lines: sagemaker is the default).
export MLOPS_AWS_TRAINING_BACKEND="in_worker"
export MLOPS_AWS_DEPLOY_TARGET="local"

# The MLflow server every component and every training job reaches (registry and artifacts).
# A SageMaker managed MLflow tracking server ARN also works here with the sagemaker-mlflow plugin.
export MLFLOW_TRACKING_URI="https://mlflow.example.internal"

mkdir -p "$MLOPS_LOCAL_DIR"
