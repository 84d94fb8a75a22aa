"""Azure ML sweep jobs: ``model.search`` as a ``Sweep`` job over the command job's environment
(the generic search and trial protocol: :mod:`mlops_core.model.tuning`)."""

from __future__ import annotations

import math
import shlex
from typing import TYPE_CHECKING, Any

from mlops_core.clouds.azure import client as azure
from mlops_core.clouds.azure.client import client_for, remote_job_spec
from mlops_core.model.tuning import (
    METRIC,
    _kind,
    _search,
    higher_is_better,
    text,
    trial_command,
    trial_env,
    tuning_job_name,
    uses_log_ranges,
)

if TYPE_CHECKING:
    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile


def azure_search_space(spec: PipelineSpec) -> dict[str, list[Any]]:
    """``searchSpace`` as the REST API takes it: ``[distribution, [arguments]]`` per parameter.

    A log range is ``loguniform`` over the natural logs of its bounds (``qloguniform`` with q=1 for
    whole numbers), a whole-number range ``quniform`` with q=1, choices ``choice`` of their strings.
    """
    out: dict[str, list[Any]] = {}
    for key, space in _search(spec).params.items():
        kind = _kind(key, space, spec.model.family)
        if kind == "choice":
            assert space.choices is not None
            out[key] = ["choice", [[text(c) for c in space.choices]]]
            continue
        low, high = float(space.low or 0), float(space.high or 0)
        if space.log:
            low, high = math.log(low), math.log(high)
        name = ("log" if space.log else "") + "uniform"
        out[key] = [f"q{name}", [low, high, 1]] if kind == "int" else [name, [low, high]]
    return out


def azure_sweep_body(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The Azure ML ``Sweep`` job over the command job's environment and compute.

    Bayesian sampling when every range is linear (Azure's Bayesian sampler takes only choice,
    uniform and quniform, and no early termination); otherwise seeded random sampling, with median
    stopping when pruning. ``timeout_minutes`` bounds the sweep and each trial.
    """
    search = _search(spec)
    command = azure.command_job_body(profile, spec, job)["properties"]
    values = " ".join(f"--{k}=${{{{search_space.{k}}}}}" for k in search.params)
    bayesian = not uses_log_ranges(spec)
    props: dict[str, Any] = {
        "jobType": "Sweep",
        "displayName": tuning_job_name(job.name),
        "experimentName": command["experimentName"],
        "description": f"mlops hyperparameter search of {spec.name} for {job.ds}",
        "computeId": command["computeId"],
        "tags": {**command["tags"], "mlops.job": job.name},
        "samplingAlgorithm": (
            {"samplingAlgorithmType": "Bayesian"}
            if bayesian
            else {"samplingAlgorithmType": "Random", "seed": spec.model.seed}
        ),
        "searchSpace": azure_search_space(spec),
        "objective": {"goal": "Maximize" if higher_is_better(spec) else "Minimize", "primaryMetric": METRIC},
        "limits": {
            "jobLimitsType": "Sweep",
            "maxTotalTrials": search.trials,
            "maxConcurrentTrials": search.concurrent,
            "timeout": azure.iso_duration(search.timeout_minutes),
            "trialTimeout": azure.iso_duration(search.timeout_minutes),
        },
        "trial": {
            "command": f"{shlex.join(trial_command(job))} {values}",
            "environmentId": command["environmentId"],
            "environmentVariables": trial_env(job),
        },
    }
    if search.pruning and not bayesian:
        props["earlyTermination"] = {
            "policyType": "MedianStopping",
            "evaluationInterval": 1,
            "delayEvaluation": 1,
        }
    return {"properties": props}


def submit_tuning(
    profile: CloudProfile, clients: ClientFactory, job: JobRequest, spec: PipelineSpec | None = None
) -> dict[str, Any]:
    """Start (or attach to) the sweep job of ``job``'s search (:func:`mlops_core.clouds.azure.tuning.azure_sweep_body`);
    returns ``{"job": <sweep job name>}``, polled like a command job."""
    name = tuning_job_name(job.name)
    client_for(profile, clients).submit_job(
        name, azure_sweep_body(profile, spec or remote_job_spec(job.folder), job)
    )
    return {"job": name}
