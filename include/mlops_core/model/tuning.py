"""``model.search.tuner: platform``: the search's trials run as jobs of the cloud's own tuning service.

SageMaker automatic model tuning (``CreateHyperParameterTuningJob``), Vertex AI hyperparameter
tuning (``hyperparameterTuningJobs``) or an Azure ML sweep job samples the search space, starts one
training-image container per trial and stops poor trials early; the space, the objective and the
limits come from ``model.search`` (:mod:`mlops_core.clouds.aws.tuning`, :mod:`mlops_core.clouds.gcp.tuning`,
:mod:`mlops_core.clouds.azure.tuning`).

Every trial runs :func:`run_trial` (``python -m mlops_core.model.tuning trial <job folder> --k=v ...``;
on SageMaker the image's entry point is called with ``train`` and reads SageMaker's
``hyperparameters.json``). A trial:

* decodes what the platform passed (:func:`decode`): each value must be one the spec's range or
  choices allows and one the family's allow-list allows, so no platform answer, however made, asks
  the estimator for what a YAML could not;
* reads the partition at the version the search was started on, splits off the holdout exactly as
  training does and scores by cross-validation on the *training rows only* (the holdout is never
  seen by a trial), the same folds as the local search;
* reports the running mean after each fold the way its platform reads it: a log line SageMaker's
  metric regex matches, the ``cloudml-hypertune`` metrics file Vertex AI reads, an MLflow metric on
  the Azure ML job's own tracking;
* writes its record (params, fold scores, mean) to ``<job folder>/trials/<trial id>.json``.

The worker then picks the best record (:func:`collect`), so the choice is the same on every
platform and made from what the trials computed, not from what an API summarises. The best params
train the challenger, which goes through the same gate as any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

from mlops_core.spec.catalog import METRICS
from mlops_core.spec.estimators import check_params, is_whole

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec, SearchParam, SearchSpec

log = logging.getLogger(__name__)

METRIC = "cv_score"  # the objective's name on every platform
# SageMaker reads the objective from the trial's log with this regex (MetricDefinitions)
METRIC_LINE = "mlops_cv_score="
METRIC_REGEX = r"mlops_cv_score=(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
HYPERTUNE_FILE = "/tmp/hypertune/output.metrics"  # noqa: S108 - where Vertex AI reads trial metrics
SAGEMAKER_CONFIG_DIR = "/opt/ml/input/config"
MIN_TUNING_SECONDS = 120  # SageMaker's floor for a tuning job's MaxRuntimeInSeconds


class TrialInputError(ValueError):
    """What the tuning service passed to a trial is not in the spec's search space."""


class NoTrialResult(RuntimeError):
    """The tuning job ended but no trial wrote a result into the job folder."""


def _search(spec: PipelineSpec) -> SearchSpec:
    search = spec.model.search
    if search is None:
        raise ValueError(f"pipeline {spec.name!r} has no model.search")
    return search


def higher_is_better(spec: PipelineSpec) -> bool:
    return METRICS[spec.evaluation.primary_metric].higher_is_better


def tuning_job_name(job_name: str) -> str:
    """``hpo-<24 hex>`` of the job request's name: unique per pipeline, day, run and try, and within
    SageMaker's 32 characters (the request's own name is a tag and the display name elsewhere)."""
    return f"hpo-{hashlib.sha256(job_name.encode()).hexdigest()[:24]}"


def text(value: Any) -> str:
    """A choice as the platforms pass it back: a string (``true``/``false`` for booleans, JSON for the rest)."""
    return value if isinstance(value, str) else json.dumps(value)


def _kind(key: str, space: SearchParam, family: str) -> str:
    if space.choices is not None:
        return "choice"
    return "int" if is_whole(key, family) else "float"


# -- the search space in each platform's terms


def uses_log_ranges(spec: PipelineSpec) -> bool:
    return any(space.log for space in _search(spec).params.values())


# -- what a trial receives


def decode(spec: PipelineSpec, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's params from what the platform passed (strings, or numbers from a JSON file).

    Keys outside ``model.search.params`` are ignored (SageMaker adds ``_tuning_objective_metric``);
    a missing key, a value outside its range or choices, or one the family's allow-list refuses
    raises :class:`TrialInputError`.
    """
    search = _search(spec)
    params: dict[str, Any] = {}
    for key, space in search.params.items():
        if key not in raw:
            raise TrialInputError(f"the tuning service passed no value for {key!r} (got {sorted(raw)})")
        params[key] = _decode_one(key, space, spec.model.family, raw[key])
    try:
        check_params(spec.model.family, params, spec.problem_type)
    except ValueError as err:
        raise TrialInputError(f"the tuning service passed values the allow-list refuses: {err}") from None
    return params


def _decode_one(key: str, space: SearchParam, family: str, value: Any) -> Any:
    given = str(value).strip().strip('"')
    if space.choices is not None:
        by_text = {text(c): c for c in space.choices}
        if given not in by_text:
            raise TrialInputError(f"{key}={given!r} is not one of the choices {sorted(by_text)}")
        return by_text[given]
    try:
        number = float(given)
    except ValueError:
        raise TrialInputError(f"{key}={given!r} is not a number") from None
    assert space.low is not None and space.high is not None
    slack = 1e-9 * max(1.0, abs(space.low), abs(space.high))
    if not (math.isfinite(number) and space.low - slack <= number <= space.high + slack):
        raise TrialInputError(f"{key}={given} is outside its range [{space.low}, {space.high}]")
    if is_whole(key, family):
        return int(round(number))
    return min(max(number, space.low), space.high)


def argv_values(args: list[str]) -> dict[str, str]:
    """``--k=v`` / ``--k v`` (Vertex AI appends the former, an Azure ML sweep's command the latter)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise TrialInputError(f"unexpected trial argument {arg!r} (expected --name=value)")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(args):
                raise TrialInputError(f"--{key} has no value")
            i += 1
            value = args[i]
        out[key] = value
        i += 1
    return out


def sagemaker_values(config_dir: str | None = None) -> dict[str, Any]:
    """SageMaker's ``hyperparameters.json`` of this trial (``SM_INPUT_CONFIG_DIR`` overrides the folder)."""
    folder = config_dir or os.environ.get("SM_INPUT_CONFIG_DIR", SAGEMAKER_CONFIG_DIR)
    with open(os.path.join(folder, "hyperparameters.json"), encoding="utf-8") as fh:
        return dict(json.load(fh))


def trial_id(params: Mapping[str, Any]) -> str:
    """The platform's trial id (Vertex AI, SageMaker's trial job name, Azure ML's run), else a hash of the params."""
    for var in ("CLOUD_ML_TRIAL_ID", "TRAINING_JOB_NAME", "AZUREML_RUN_ID"):
        if os.environ.get(var):
            return re.sub(r"[^A-Za-z0-9_.-]", "_", os.environ[var])[:128]
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- running a trial


def report(value: float, step: int) -> None:
    """The running objective, for the platform's early stopping and for its choice of the next trial."""
    print(f"{METRIC_LINE}{value!r} fold={step}", flush=True)
    if os.environ.get("CLOUD_ML_TRIAL_ID") or os.environ.get("CLOUD_ML_HP_METRIC_FILE"):
        path = os.environ.get("CLOUD_ML_HP_METRIC_FILE", HYPERTUNE_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        line = {
            "timestamp": time.time(),
            "trial": os.environ.get("CLOUD_ML_TRIAL_ID", "0"),
            METRIC: str(value),
        }
        line |= {"global_step": str(step)}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
    if os.environ.get("AZUREML_RUN_ID"):
        import mlflow

        mlflow.log_metric(METRIC, value, step=step)


def run_trial(folder: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Score one trial's params on the training rows of the job folder's partition; write its record."""
    from mlops_core.data import filesystems
    from mlops_core.model import remote
    from mlops_core.model.search import NotFinite, cv_scores, folds
    from mlops_core.model.training import training_rows

    spec = remote.job_spec(folder)
    params = decode(spec, raw)
    req = remote.job_request(folder, spec)  # checked: the raw partition is the pipeline's own
    fs, base = filesystems.filesystem(folder)
    X, y, numeric, categorical, pos = training_rows(spec, req.raw_uri, version=req.raw_version)
    ident = trial_id(params)
    record: dict[str, Any] = {"trial": ident, "params": params, "n_rows": len(X), "state": "COMPLETE"}
    try:
        scores = cv_scores(
            spec,
            X,
            y,
            numeric,
            categorical,
            pos,
            params,
            folds(spec, X, y),
            lambda fold, _value, running: report(running, fold),
        )
    except NotFinite as err:
        record |= {"state": "FAILED", "reason": str(err), "folds": [], "value": None}
    else:
        record |= {"folds": scores, "value": sum(scores) / len(scores)}
    fs.makedirs(f"{base}/trials", exist_ok=True)  # (object stores have no folders: a no-op there)
    fs.pipe(f"{base}/trials/{ident}.json", json.dumps(record, sort_keys=True, default=str).encode())
    log.info("trial %s of %s: %s -> %s", ident, spec.name, params, record["value"])
    return record


# -- the worker's side


def collect(spec: PipelineSpec, folder: str) -> dict[str, Any]:
    """The search result from the trial records: the best complete trial's params and value.

    Each record's params are decoded again (a record is only trusted as far as the search space
    goes). Ties go to the smaller trial id, so the choice does not depend on listing order.
    """
    from mlops_core.data import filesystems

    fs, base = filesystems.filesystem(folder)
    paths = sorted(fs.glob(f"{base}/trials/*.json")) if fs.exists(f"{base}/trials") else []
    trials: list[dict[str, Any]] = []
    for path in paths:
        record = json.loads(fs.cat_file(path))
        try:
            record["params"] = decode(spec, {k: text(v) for k, v in (record.get("params") or {}).items()})
        except TrialInputError as err:
            log.warning("ignoring trial record %s: %s", path, err)
            continue
        trials.append(record)
    done = [t for t in trials if t.get("state") == "COMPLETE" and _finite(t.get("value"))]
    if not done:
        raise NoTrialResult(
            f"the tuning job ended but none of its trials wrote a complete result under {folder}/trials "
            f"({len(paths)} record(s)); see the trials' logs on the platform"
        )
    sign = -1.0 if higher_is_better(spec) else 1.0
    best = min(done, key=lambda t: (sign * float(t["value"]), str(t["trial"])))
    return {
        "metric": spec.evaluation.primary_metric,
        "best_params": best["params"],
        "best_value": float(best["value"]),
        "best_trial": best["trial"],
        "trials": [{k: t.get(k) for k in ("trial", "state", "value", "params", "folds")} for t in trials],
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# -- the tuning jobs


def trial_env(job: JobRequest) -> dict[str, str]:
    """The trial container's environment: the job's, without MLflow's server (trials log nothing there)."""
    return {k: v for k, v in job.env.items() if k != "MLFLOW_TRACKING_URI"}


def trial_command(job: JobRequest) -> list[str]:
    return ["python", "-m", "mlops_core.model.tuning", "trial", job.folder]


def main(argv: list[str] | None = None) -> int:
    """``trial <job folder> [--k=v ...]``, or ``train`` (SageMaker: folder from ``MLOPS_JOB_FOLDER``)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["train"] and os.environ.get("MLOPS_JOB_FOLDER"):
        record = run_trial(os.environ["MLOPS_JOB_FOLDER"], sagemaker_values())
    elif len(args) >= 2 and args[0] == "trial":
        record = run_trial(args[1], argv_values(args[2:]))
    else:
        print(
            "usage: python -m mlops_core.model.tuning trial <job folder> [--name=value ...]\n"
            "       python -m mlops_core.model.tuning train   (SageMaker; MLOPS_JOB_FOLDER names the folder)",
            file=sys.stderr,
        )
        return 2
    return 0 if record["state"] == "COMPLETE" else 1


if __name__ == "__main__":
    raise SystemExit(main())
