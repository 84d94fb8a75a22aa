"""SageMaker automatic model tuning: ``model.search`` as a ``CreateHyperParameterTuningJob`` request
(the generic search and trial protocol: :mod:`mlops_core.model.tuning`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.clouds.aws import training as aws
from mlops_core.model.tuning import (
    METRIC,
    METRIC_REGEX,
    MIN_TUNING_SECONDS,
    _kind,
    _search,
    higher_is_better,
    text,
    trial_env,
    tuning_job_name,
)

if TYPE_CHECKING:
    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import CloudProfile


def sagemaker_ranges(spec: PipelineSpec) -> dict[str, list[dict[str, Any]]]:
    """``ParameterRanges``: integer, continuous and categorical ranges (values are strings)."""
    ranges: dict[str, list[dict[str, Any]]] = {}
    for key, space in _search(spec).params.items():
        kind = _kind(key, space, spec.model.family)
        if kind == "choice":
            assert space.choices is not None
            item: dict[str, Any] = {"Name": key, "Values": [text(c) for c in space.choices]}
            ranges.setdefault("CategoricalParameterRanges", []).append(item)
            continue
        number = int if kind == "int" else float
        assert space.low is not None and space.high is not None
        item = {
            "Name": key,
            "MinValue": str(number(space.low)),
            "MaxValue": str(number(space.high)),
            "ScalingType": "Logarithmic" if space.log else "Linear",
        }
        group = "IntegerParameterRanges" if kind == "int" else "ContinuousParameterRanges"
        ranges.setdefault(group, []).append(item)
    return ranges


def sagemaker_tuning_config(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The ``CreateHyperParameterTuningJob`` request (Bayesian, seeded, early stopping when pruning).

    A tuning job's algorithm has no entry point of its own: SageMaker starts the image with
    ``train``, which the training image's entry point (``python -m mlops_core.model.tuning``) runs as a
    trial of the job folder named by ``MLOPS_JOB_FOLDER``.
    """
    search = _search(spec)
    base = aws.training_job_config(profile, spec, job)
    seconds = max(MIN_TUNING_SECONDS, search.timeout_minutes * 60)
    return {
        "HyperParameterTuningJobName": tuning_job_name(job.name),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if higher_is_better(spec) else "Minimize",
                "MetricName": METRIC,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": search.trials,
                "MaxParallelTrainingJobs": search.concurrent,
                "MaxRuntimeInSeconds": seconds,
            },
            "ParameterRanges": sagemaker_ranges(spec),
            "TrainingJobEarlyStoppingType": "Auto" if search.pruning else "Off",
            "RandomSeed": spec.model.seed,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": base["AlgorithmSpecification"]["TrainingImage"],
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": METRIC, "Regex": METRIC_REGEX}],
            },
            "RoleArn": base["RoleArn"],
            "OutputDataConfig": base["OutputDataConfig"],
            "ResourceConfig": base["ResourceConfig"],
            "StoppingCondition": {"MaxRuntimeInSeconds": seconds},
            "Environment": {**trial_env(job), "MLOPS_JOB_FOLDER": job.folder},
        },
        "Tags": base["Tags"],
    }
