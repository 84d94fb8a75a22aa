#!/usr/bin/env bash
# The image's entry point: Airflow's own (dumb-init + /entrypoint), except for a SageMaker tuning
# trial. A hyperparameter tuning job cannot set a container entry point, so SageMaker starts the
# image with the single argument `train`; with MLOPS_JOB_FOLDER set (the tuning job's environment,
# mlops_core.clouds.aws.tuning.sagemaker_tuning_config) that runs one trial of the search.
set -euo pipefail
if [[ "${1:-}" == "train" && $# -eq 1 && -n "${MLOPS_JOB_FOLDER:-}" ]]; then
    exec python -m mlops_core.model.tuning train
fi
exec /usr/bin/dumb-init -- /entrypoint "$@"
