"""Remote training: the same :func:`mlops_core.model.training.train` run by a cloud's job service.

The worker writes a job folder in the lake (``<lake>/<pipeline>/jobs/<job name>/``) holding the
spec and the request; the job runs ``python -m mlops_core.model.remote <job folder>`` in this project's
image, trains, logs to MLflow with the lineage tags of the request, and writes ``result.json``
beside them. The worker then reads the result, so what follows training is the same on every
backend.

Job names derive from pipeline, data day, Airflow run and try (:func:`job_name`): a resumed try
finds the job it already started instead of starting a second one, and a different run of the same
day (a manual re-run, a backfill with ``--reprocess-behavior``) never attaches to another run's job.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date

    from mlops_core.spec import PipelineSpec

RUNNING, SUCCEEDED = "running", "succeeded"


class RemoteJobFailed(RuntimeError):
    """The platform reports the job failed or was stopped; the message carries its reason."""


def job_name(pipeline: str, ds: str | date, try_number: int, run_key: str = "", kind: str = "") -> str:
    """``mlops-<pipeline>[-<kind>]-<yyyymmdd>[-<run hash>]-t<try>``: valid on SageMaker, Vertex AI and Azure ML (<= 63 chars).

    ``run_key`` (``dag_id/run_id``) adds 8 hex digits of its sha256, so each Airflow run has
    job names of its own; ``kind`` (``hpo``: a search) keeps a search's folder apart from training's.
    """
    import hashlib

    day = str(ds)[:10].replace("-", "")
    stem = re.sub(r"[^a-z0-9-]", "-", pipeline.lower())
    run = f"-{hashlib.sha256(run_key.encode()).hexdigest()[:8]}" if run_key else ""
    suffix = (f"-{kind}" if kind else "") + f"-{day}{run}-t{int(try_number)}"
    return f"mlops-{stem}"[: 63 - len(suffix)] + suffix


@dataclass
class JobRequest:
    """What a remote training job needs; written to ``<folder>/request.json`` before submission."""

    name: str
    folder: str  # lake URI of the job folder
    raw_uri: str
    lake_root: str
    ds: str
    tags: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)  # MLFLOW_TRACKING_URI etc. for the container
    raw_version: int | None = None  # the partition's manifest version a search's trials read
    search: dict[str, Any] | None = None  # a platform search's result: its best params train the model

    @property
    def command(self) -> list[str]:
        return ["python", "-m", "mlops_core.model.remote", self.folder]

    @property
    def result_uri(self) -> str:
        return f"{self.folder}/result.json"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare(
    spec: PipelineSpec,
    raw_uri: str,
    lake_root: str,
    ds: str,
    tags: dict[str, str],
    try_number: int,
    env: dict[str, str] | None = None,
    run_key: str = "",
    *,
    kind: str = "",
    raw_version: int | None = None,
    search: dict[str, Any] | None = None,
) -> JobRequest:
    """Write the job folder (spec + request) and return the request. Idempotent per name."""
    from mlops_core.data import filesystems

    name = job_name(spec.name, ds, try_number, run_key, kind)
    folder = filesystems.join(lake_root, spec.name, "jobs", name)
    req = JobRequest(
        name, folder, raw_uri, lake_root, str(ds)[:10], dict(tags), dict(env or {}), raw_version, search
    )
    fs, base = filesystems.filesystem(folder)
    fs.makedirs(base, exist_ok=True)
    fs.pipe(f"{base}/spec.json", spec.model_dump_json().encode())
    fs.pipe(f"{base}/request.json", json.dumps(req.to_dict(), sort_keys=True).encode())
    return req


def read_result(req: JobRequest | str) -> dict[str, Any]:
    """The training result the job wrote; an error that says where it looked when it is missing."""
    from mlops_core.data import filesystems

    uri = req.result_uri if isinstance(req, JobRequest) else f"{req.rstrip('/')}/result.json"
    fs, path = filesystems.filesystem(uri)
    if not fs.exists(path):
        raise RemoteJobFailed(
            f"the training job finished but wrote no result at {uri}; see the job's logs on the platform"
        )
    return dict(json.loads(fs.cat_file(path)))


class JobFolderError(ValueError):
    """A job folder's ``spec.json`` or ``request.json`` that the job must not act on.

    The folder lives in the lake, which more than the worker can write: the job re-checks what
    it reads exactly as the YAML path does (size cap, ``${VAR}`` names, the spec's rules) and keeps
    the data it reads inside the pipeline's own lake prefix.
    """


def job_spec(folder: str) -> PipelineSpec:
    """The spec :func:`prepare` wrote into the job folder, checked like a pipeline YAML.

    :raises JobFolderError: over the YAML size cap, not JSON, or a spec the YAML path refuses
        (``${VAR}`` names outside the allow-list included).
    """
    from mlops_core.data import filesystems
    from mlops_core.spec import MAX_YAML_BYTES, SpecError, parse_spec

    fs, base = filesystems.filesystem(folder)
    where = f"{folder.rstrip('/')}/spec.json"
    blob = fs.cat_file(f"{base}/spec.json")
    if len(blob) > MAX_YAML_BYTES:
        raise JobFolderError(
            f"{where} is {len(blob)} bytes; a pipeline spec may hold at most {MAX_YAML_BYTES}"
        )
    try:
        data = json.loads(blob)
    except (ValueError, RecursionError) as err:
        raise JobFolderError(
            f"{where} is not a JSON spec ({type(err).__name__}); prepare the job again"
        ) from None
    try:
        return parse_spec(data, where)
    except SpecError as err:
        raise JobFolderError(str(err)) from None


def job_request(folder: str, spec: PipelineSpec) -> JobRequest:
    """The request :func:`prepare` wrote, checked against the folder the job was started on.

    ``folder`` (the job's command line) is the anchor: the request must name it, its lake root must
    be the one the folder lies in (``<lake>/<pipeline>/jobs/<name>``), and ``raw_uri`` must lie in
    the pipeline's own lake prefix (an expanded URI: no ``${``, no ``..``). A platform search's
    best params go through the same allow-list as ``model.params``.

    :raises JobFolderError: naming the field and what it must be.
    """
    import posixpath

    from mlops_core.base import settings
    from mlops_core.data import filesystems
    from mlops_core.spec.estimators import check_params

    fs, base = filesystems.filesystem(folder)
    where = f"{folder.rstrip('/')}/request.json"
    try:
        raw = json.loads(fs.cat_file(f"{base}/request.json"))
        req = JobRequest(**raw)
    except (ValueError, TypeError, RecursionError) as err:
        raise JobFolderError(f"{where} is not a job request ({err}); prepare the job again") from None
    folder = folder.rstrip("/")
    own = filesystems.join(str(req.lake_root), spec.name)  # as prepare() built the folder
    if req.folder.rstrip("/") != folder or folder != f"{own}/jobs/{req.name}":
        raise JobFolderError(
            f"{where}: folder {req.folder!r}, lake_root {req.lake_root!r} and name {req.name!r} do not "
            f"describe the job folder {folder!r} (<lake_root>/{spec.name}/jobs/<name>)"
        )
    uri = str(req.raw_uri)
    head, sep, rest = uri.partition("://")
    normal = f"{head}{sep}{posixpath.normpath(rest)}" if sep else posixpath.normpath(uri)
    if "${" in uri or ".." in uri.split("/") or normal != uri.rstrip("/") or not normal.startswith(own + "/"):
        raise JobFolderError(
            f"{where}: raw_uri {settings.redact(uri)!r} is outside the pipeline's own lake prefix {own}/; "
            "a job reads only its pipeline's partitions"
        )
    if not (isinstance(req.tags, dict) and all(isinstance(v, str) for v in req.tags.values())):
        raise JobFolderError(f"{where}: tags must map names to strings")
    if req.search is not None:
        try:
            check_params(spec.model.family, dict(req.search["best_params"]), spec.problem_type)
        except (ValueError, KeyError, TypeError) as err:
            raise JobFolderError(f"{where}: search.best_params: {err}") from None
    return req


def run(folder: str) -> dict[str, Any]:
    """What the job's container runs: train from the job folder and write ``result.json``."""
    from mlops_core.data import filesystems
    from mlops_core.model.training import train

    spec = job_spec(folder)
    req = job_request(folder, spec)
    fs, base = filesystems.filesystem(folder)
    tags = {**req.tags, "mlops.training_backend_job": req.name}
    result = train(spec, req.raw_uri, req.lake_root, req.ds, tags, searched=req.search).to_dict()
    fs.pipe(f"{base}/result.json", json.dumps(result, sort_keys=True, default=str).encode())
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlops_core.model.remote <job folder URI>", file=sys.stderr)
        return 2
    result = run(args[0])
    print(json.dumps({"run_id": result.get("run_id"), "result": f"{args[0].rstrip('/')}/result.json"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
