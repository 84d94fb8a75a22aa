"""Vertex AI hyperparameter tuning: ``model.search`` as a ``HyperparameterTuningJob``
(the generic search and trial protocol: :mod:`mlops_core.model.tuning`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.clouds.gcp import client as gcp
from mlops_core.clouds.gcp.client import VertexClient, _submit, remote_job_spec
from mlops_core.model.tuning import (
    METRIC,
    _kind,
    _search,
    higher_is_better,
    text,
    trial_command,
    trial_env,
    tuning_job_name,
)

if TYPE_CHECKING:
    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile


def vertex_parameters(spec: PipelineSpec) -> list[dict[str, Any]]:
    """``studySpec.parameters`` (int64 bounds as JSON strings, Google's REST encoding)."""
    out: list[dict[str, Any]] = []
    for key, space in _search(spec).params.items():
        kind = _kind(key, space, spec.model.family)
        if kind == "choice":
            assert space.choices is not None
            out.append(
                {"parameterId": key, "categoricalValueSpec": {"values": [text(c) for c in space.choices]}}
            )
            continue
        scale = "UNIT_LOG_SCALE" if space.log else "UNIT_LINEAR_SCALE"
        if kind == "int":
            bounds: dict[str, Any] = {
                "minValue": str(int(space.low or 0)),
                "maxValue": str(int(space.high or 0)),
            }
            out.append({"parameterId": key, "integerValueSpec": bounds, "scaleType": scale})
        else:
            bounds = {"minValue": float(space.low or 0), "maxValue": float(space.high or 0)}
            out.append({"parameterId": key, "doubleValueSpec": bounds, "scaleType": scale})
    return out


def vertex_tuning_body(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The ``HyperparameterTuningJob``: Vertex's default (Bayesian) algorithm over the space, median
    automated stopping when pruning; each trial a custom job of the training image, its values
    appended as ``--k=v``. ``timeout_minutes`` bounds each trial (Vertex has no whole-job bound)."""
    search = _search(spec)
    trial = gcp.custom_job_body(profile, spec, job)["jobSpec"]
    container = trial["workerPoolSpecs"][0]["containerSpec"]
    container["command"] = trial_command(job)
    container["env"] = [{"name": k, "value": str(v)} for k, v in sorted(trial_env(job).items())]
    trial["scheduling"] = {"timeout": f"{search.timeout_minutes * 60}s"}
    study: dict[str, Any] = {
        "metrics": [{"metricId": METRIC, "goal": "MAXIMIZE" if higher_is_better(spec) else "MINIMIZE"}],
        "parameters": vertex_parameters(spec),
    }
    if search.pruning:
        study["medianAutomatedStoppingSpec"] = {"useElapsedDuration": False}
    return {
        "displayName": tuning_job_name(job.name),
        "studySpec": study,
        "maxTrialCount": search.trials,
        "parallelTrialCount": search.concurrent,
        "maxFailedTrialCount": search.trials,
        "trialJobSpec": trial,
        "labels": {"mlops-pipeline": gcp.label(spec.name), "mlops-job": gcp.label(job.name)},
    }


def submit_tuning(
    profile: CloudProfile, clients: ClientFactory, job: JobRequest, spec: PipelineSpec | None = None
) -> dict[str, Any]:
    """Start (or attach to) the hyperparameter tuning job of ``job``'s search
    (:func:`mlops_core.clouds.gcp.tuning.vertex_tuning_body`); the handle polls like a training job's."""
    body = vertex_tuning_body(profile, spec or remote_job_spec(job.folder), job)
    return _submit(VertexClient.for_profile(profile, clients), "hyperparameterTuningJobs", body)
