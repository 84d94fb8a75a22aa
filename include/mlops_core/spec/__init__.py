"""The pipeline spec: one YAML file per model, validated by pydantic.

Cheap to import (pydantic + PyYAML only): the DAG loader calls :func:`load_spec` at every parse.
Unknown keys are errors (``extra="forbid"``), numbers have bounds, names come from allow-lists;
:class:`SpecError` names the file, each bad field and what is allowed.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_core.base import envref
from mlops_core.spec.catalog import EXPECTATIONS, METRICS, ProblemType, check_expectation_args, metrics_for
from mlops_core.spec.estimators import check_params, check_search, families

Scalar = str | int | float | bool | None
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_ .\-]*$", max_length=128)]

# libyaml's C loader parses ~10x faster than the pure-Python one; both are "safe" (no object tags).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CRON_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@continuous"}
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")


# Object stores and the local disk; never http(s), ftp, memory:// or a cloud metadata address.
SOURCE_SCHEMES = frozenset({"file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})
_ENV_NAME = re.compile(f"^{envref.NAME.pattern}$")
MAX_YAML_BYTES = 256 * 1024


def check_source_uri(value: str) -> str:
    """The parse-time half of the URI policy (the run-time half, the profile's roots, is in clouds)."""
    if value.startswith(("${MLOPS_LANDING}/", "${MLOPS_LAKE}/")):
        rest = value.split("}", 1)[1]
    elif "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"scheme {scheme!r} is not allowed for a source; use the landing zone "
                f"(${{MLOPS_LANDING}}/...) or one of: {', '.join(sorted(SOURCE_SCHEMES))}"
            )
        rest = value.split("://", 1)[1]
    else:
        raise ValueError(
            "a source is a URI under the landing zone, e.g. ${MLOPS_LANDING}/<name>/data.csv, "
            "or s3://, gs://, abfs:// (relative and bare local paths are not allowed)"
        )
    if ".." in rest.split("/"):
        raise ValueError("a source URI may not contain '..'")
    return value


# A DVC source's repository: a local one (a ${VAR} path such as ${MLOPS_LANDING}/..., or file://)
# or a git URL. Never http, git://, scp-style user@host:path, credentials or a query.
DVC_REPO_SCHEMES = frozenset({"file", "https", "ssh"})
DVC_SCHEME = "dvc://"
_GIT_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_DVC_REMOTE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_dvc_repo(value: str, *, expanded: bool = False) -> str:
    """The parse-time rules of ``source.dvc.repo`` (re-applied at run time to the expanded value).

    ``${VAR}/...`` (a local repository, e.g. under ``${MLOPS_LANDING}``), ``file:///...``, or a git
    URL ``https://host/org/repo.git`` / ``ssh://git@host/org/repo.git``; no password or token in
    the URL (an ``ssh://`` user name is allowed), no query or fragment, no ``..``. ``expanded``:
    the value after ``${VAR}`` expansion, where an absolute local path is allowed too.
    """
    if any(c.isspace() or ord(c) < 32 for c in value) or "\\" in value or "?" in value or "#" in value:
        raise ValueError(
            "a DVC repo may not hold whitespace, control characters, '\\', a query ('?') or a fragment ('#')"
        )
    if value.startswith("${") and "}" in value and not expanded:
        rest = value.split("}", 1)[1]
    elif "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() not in DVC_REPO_SCHEMES:
            raise ValueError(
                f"scheme {scheme.lower()!r} is not allowed for a DVC repo; use one of: "
                f"{', '.join(sorted(DVC_REPO_SCHEMES))}"
            )
        user, at, _ = rest.split("/", 1)[0].rpartition("@")
        if at and (scheme.lower() != "ssh" or ":" in user):
            raise ValueError(
                "a DVC repo URL may not carry credentials (user:password@, or a token as the user of an "
                "https URL): the worker's git credential helper or ssh agent provides them"
            )
        if scheme.lower() == "file" and not rest.startswith("/"):
            raise ValueError("a file:// DVC repo is an absolute path: file:///srv/repos/data")
    elif expanded and value.startswith("/"):
        rest = value
    else:
        raise ValueError(
            "source.dvc.repo is a local repository such as ${MLOPS_LANDING}/<name>/repo or file:///..., or a "
            "git URL https://host/org/repo.git or ssh://git@host/org/repo.git (no relative or bare paths, no "
            "scp-style user@host:path)"
        )
    if ".." in rest.split("/"):
        raise ValueError("a DVC repo may not contain '..'")
    return value


def check_dvc_path(uri: str) -> str:
    """``source.uri`` of a DVC source: ``dvc://<path inside the repo>``, relative, no ``..``."""
    path = uri[len(DVC_SCHEME) :]
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(
            "with source.dvc, source.uri is a path inside the repository, e.g. dvc://data/train.csv "
            "(relative: no leading '/', no empty, '.' or '..' parts)"
        )
    if any(ord(c) < 32 for c in path) or any(c in path for c in "\\$?#"):
        raise ValueError("a dvc:// path may not hold control characters, '\\', '$', '?' or '#'")
    return uri


def check_env_refs(data: Any, declared: set[str], where: str = "") -> list[str]:
    """``${VAR}`` references a YAML may use: ``MLOPS_*`` and the names listed under ``env:``.

    Never names that look like credentials or Airflow settings, declared or not, so a YAML
    author cannot copy a secret into a URI, a log line or the lake. Every string is checked
    against :mod:`mlops_core.base.envref`'s grammar (no nesting, no unclosed ``${``), the one
    :func:`mlops_core.base.settings.expand` applies at run time.
    """
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            problems += check_env_refs(value, declared, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += check_env_refs(value, declared, f"{where}.{i}")
    elif isinstance(data, str):
        # the grammar and the names of mlops_core.base.envref: what the run-time expander accepts
        problems += [f"{where}: {p}" for p in envref.problems(data, declared)]
    return problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_schedule(value: str | None) -> str | None:
    if value is None or value in _CRON_PRESETS:
        return value
    parts = value.split()
    if len(parts) != 5 or not all(_CRON_FIELD.match(p) for p in parts):
        raise ValueError(
            f"{value!r} is not a cron expression (5 fields) nor one of {sorted(_CRON_PRESETS)}; use null for manual only"
        )
    return value


class PartitionSpec(_Model):
    """How the logical date selects source data.

    ``snapshot``: the whole source every run; ``column``: rows whose ``column`` falls in
    ``(ds - lookback_days, ds]``; ``files``: the source URI holds ``{ds}``, one file per day, and
    the last ``lookback_days`` files are read.
    """

    mode: Literal["snapshot", "column", "files"] = "snapshot"
    column: str | None = None
    lookback_days: int = Field(1, ge=1, le=3660)

    @model_validator(mode="after")
    def _column_needed(self) -> PartitionSpec:
        if self.mode == "column" and not self.column:
            raise ValueError(
                "partition.mode 'column' needs partition.column (the date column that selects rows)"
            )
        if self.mode != "column" and self.column:
            raise ValueError(f"partition.column is only used with mode 'column' (mode is {self.mode!r})")
        return self


class DvcSpec(_Model):
    """A DVC-tracked source: ``source.uri`` is ``dvc://<path in the repo>``, read at ``rev``.

    ``repo``: the DVC repository (:func:`check_dvc_repo`; at run time also the cloud profile's
    roots: a local repo under the landing zone or a ``source_roots`` entry, a git URL only when
    ``source_roots`` lists it). ``rev``: a tag, branch or commit; lineage records the full commit
    sha it resolves to and each file's DVC md5. ``remote``: a remote named in the repository's
    ``.dvc/config`` (default: its default remote). Credentials for the remote come from the
    worker's environment or the repository's own DVC config, never from this YAML.
    """

    repo: str = Field(min_length=1, max_length=1024)
    rev: str = Field(min_length=1, max_length=128)
    remote: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("repo")
    @classmethod
    def _repo_policy(cls, value: str) -> str:
        return check_dvc_repo(value)

    @field_validator("rev")
    @classmethod
    def _git_ref(cls, value: str) -> str:
        # a plain ref name: never an option (git reads a leading '-' as one) nor rev syntax (@{ ~ ^ :)
        if not _GIT_REF.match(value) or ".." in value or "//" in value or value.endswith(("/", ".", ".lock")):
            raise ValueError(
                "rev is a git tag, branch or commit: letters, digits and '_' first, then also '.', '-', '/'; "
                "no '..', '//', or a trailing '/', '.', '.lock'"
            )
        return value

    @field_validator("remote")
    @classmethod
    def _remote_name(cls, value: str | None) -> str | None:
        if value is not None and not _DVC_REMOTE.match(value):
            raise ValueError(
                "remote is the name of a DVC remote in the repository's .dvc/config: letters, digits and '_' "
                "first, then also '.', '-'"
            )
        return value


class SourceSpec(_Model):
    """Where raw data comes from. ``uri`` may use ``${ENV_VAR}``; ``conn_id`` names an Airflow connection.

    ``dvc``: the source is a DVC-tracked path (``uri: dvc://data/train.csv``) in that repository
    at that revision (:class:`DvcSpec`); snapshot, column and files modes all apply.

    ``wait_minutes``: a day with no rows yet is *not ready*, not failed: ``ingest`` waits
    (deferred, polling) until the rows arrive or until ``wait_minutes`` after the day ended,
    then fails. A day that ended longer ago than that (a backfill of an empty day) fails at once.
    """

    uri: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    conn_id: str | None = None
    partition: PartitionSpec = PartitionSpec()
    wait_minutes: int = Field(180, ge=0, le=7 * 24 * 60)
    # CSV rows that do not parse (wrong field count, truncated line, a non-number in a numeric
    # column): up to this share of the rows is quarantined to the ``rejected`` stage; above it,
    # ingest fails naming the lines. 0: any malformed row fails ingest.
    max_rejected_share: float = Field(0.0, ge=0.0, le=0.2)
    dvc: DvcSpec | None = None

    @field_validator("uri")
    @classmethod
    def _uri_policy(cls, value: str) -> str:
        if value[: len(DVC_SCHEME)].lower() == DVC_SCHEME:
            return value  # a path inside source.dvc's repository: checked with it in _dvc_source
        return check_source_uri(value)

    @model_validator(mode="after")
    def _files_template(self) -> SourceSpec:
        if self.partition.mode == "files" and "{ds}" not in self.uri:
            raise ValueError("partition.mode 'files' needs '{ds}' in source.uri (e.g. .../events_{ds}.csv)")
        return self

    @model_validator(mode="after")
    def _dvc_source(self) -> SourceSpec:
        in_repo = self.uri[: len(DVC_SCHEME)].lower() == DVC_SCHEME
        if self.dvc is None:
            if in_repo:
                raise ValueError(
                    "a dvc:// source.uri needs source.dvc: {repo: ..., rev: ...} (the repository and the git "
                    "revision to read it at)"
                )
            return self
        if not in_repo:
            raise ValueError(
                "with source.dvc, source.uri is the path inside the repository: dvc://<path>, e.g. dvc://data/train.csv"
            )
        check_dvc_path(self.uri)
        if self.conn_id:
            raise ValueError(
                "source.conn_id is not used with source.dvc: DVC reads its remote with credentials from the "
                "worker's environment or the repository's .dvc/config.local; remove source.conn_id"
            )
        return self


_JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$"
_JOB_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
JobParameter = Annotated[str, Field(max_length=2048)] | int | float | bool
IngestionDag = Literal["training", "batch_scoring", "monitoring"]
INGESTION_DAGS: tuple[IngestionDag, ...] = ("training", "batch_scoring", "monitoring")


def _check_job_parameters(value: dict[str, Any]) -> dict[str, Any]:
    """Names a job can take; values are data (``{ds}`` is the only placeholder), never templates."""
    if len(value) > 50:
        raise ValueError(f"at most 50 parameters (got {len(value)})")
    for name, item in value.items():
        if not _JOB_PARAM.match(name.removeprefix("--")):
            raise ValueError(f"parameter name {name!r} is not a plain identifier (letters, digits, _ . -)")
        if isinstance(item, str) and ("{{" in item or "{%" in item):
            raise ValueError(
                f"parameter {name!r}: Jinja markup is not evaluated in a pipeline YAML; use {{ds}} for the data day"
            )
    return value


class GlueIngestion(_Model):
    """An AWS Glue job (defined beforehand, by Terraform, CDK or the console), run once per data day
    through the amazon provider's ``GlueJobOperator`` (deferrable and durable: a retry attaches to
    the run its first try started). ``arguments`` become the run's ``--name`` arguments."""

    job_name: str = Field(pattern=_JOB_NAME)
    arguments: dict[str, JobParameter] = {}
    conn_id: str | None = Field(None, min_length=1, max_length=250)  # default: the cloud profile's
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    _params = field_validator("arguments")(classmethod(lambda cls, v: _check_job_parameters(v)))


class DataflowIngestion(_Model):
    """A Dataflow flex template (a Beam pipeline packaged as a container) launched once per data day
    through the google provider's ``DataflowStartFlexTemplateOperator`` (deferrable). The job is
    named after the pipeline, the day and the Airflow run, so a retry finds the job its first try
    launched instead of starting a second one."""

    template: str = Field(max_length=1024)  # the flex template's spec file: containerSpecGcsPath
    parameters: dict[str, JobParameter] = {}
    location: str = Field("us-central1", pattern=r"^[a-z]+-[a-z]+\d+$")
    project_id: str | None = Field(None, pattern=r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$")
    conn_id: str | None = Field(None, min_length=1, max_length=250)  # default: the cloud profile's
    max_workers: int | None = Field(None, ge=1, le=1000)
    service_account_email: str | None = Field(
        None, pattern=r"^[^@\s]+@[a-z0-9\-]+\.iam\.gserviceaccount\.com$"
    )

    _params = field_validator("parameters")(classmethod(lambda cls, v: _check_job_parameters(v)))

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not re.match(r"^gs://[a-z0-9][a-z0-9._\-]{1,221}[a-z0-9]/[^\s]+\.json$", value) or ".." in value:
            raise ValueError(
                "template is the flex template's spec file in Cloud Storage, e.g. "
                "gs://my-bucket/templates/export.json (built by `gcloud dataflow flex-template build`)"
            )
        return value


class DataFactoryIngestion(_Model):
    """An Azure Data Factory pipeline run once per data day through the microsoft-azure provider's
    ``AzureDataFactoryRunPipelineOperator`` (deferrable). The pipeline must declare two string
    parameters: the data day (``ds_parameter``) and ``mlops_run_key``, by which a retry finds the
    run its first try started."""

    pipeline_name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,259}$")
    resource_group_name: str = Field(pattern=r"^[A-Za-z0-9_\-.()]{1,90}$")
    factory_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-]{1,61}[A-Za-z0-9]$")
    parameters: dict[str, JobParameter] = {}
    conn_id: str = Field("azure_data_factory_default", min_length=1, max_length=250)

    _params = field_validator("parameters")(classmethod(lambda cls, v: _check_job_parameters(v)))


class IngestionSpec(_Model):
    """A managed job that lands the day's data before ``ingest`` reads it: exactly one of ``glue``,
    ``dataflow`` or ``data_factory``. The job gets the data day as parameter ``ds_parameter``
    (Glue: ``--<ds_parameter>``), and ``{ds}`` in any parameter value is replaced by it; it must
    write where ``source.uri`` reads (typically ``partition.mode: files`` with ``{ds}`` in the URI).
    ``dags``: which of the pipeline's DAGs run it before their ``ingest``."""

    glue: GlueIngestion | None = None
    dataflow: DataflowIngestion | None = None
    data_factory: DataFactoryIngestion | None = None
    ds_parameter: str = Field("ds", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    timeout_minutes: int = Field(120, ge=1, le=2 * 24 * 60)
    poll_seconds: int = Field(60, ge=5, le=3600)
    dags: list[IngestionDag] = Field(list(INGESTION_DAGS), min_length=1, max_length=3)

    @model_validator(mode="after")
    def _exactly_one(self) -> IngestionSpec:
        given = [k for k in ("glue", "dataflow", "data_factory") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"exactly one of glue, dataflow or data_factory is needed (got {', '.join(given) or 'none'})"
            )
        job = getattr(self, given[0])
        params = job.arguments if given[0] == "glue" else job.parameters
        reserved = {self.ds_parameter, "mlops_run_key", "airflow_task_uuid"}
        clash = sorted(n for n in params if n.removeprefix("--") in reserved)
        if clash:
            raise ValueError(
                f"ingestion.{given[0]}: {clash} are set by the package (the data day is "
                f"{self.ds_parameter!r}, the run key 'mlops_run_key'); remove them"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("glue", "dataflow", "data_factory") if getattr(self, k) is not None)


ColumnName = Annotated[str, Field(min_length=1, max_length=128)]


class FeatureJoin(_Model):
    """One point-in-time join from an offline feature store (:mod:`mlops_core.data.features`).

    ``store: sagemaker``: the offline store of SageMaker Feature Store group ``feature_group`` (the
    aws profile's connection). ``store: vertex``: Vertex AI Feature Store group ``feature_group``
    (its BigQuery source; the group's entity id and timestamp columns are the store's keys and
    time, ``features`` are feature ids of the group; the gcp profile's connection). ``store:
    table``: an offline table of your own (``table``: Parquet or CSV under the landing zone or a
    source root). Each source row gets ``features`` as of its
    ``event_time``: the latest record of its ``entity_columns`` at or before it (no later value can
    leak into training), at most ``max_age_days`` old.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    store: Literal["sagemaker", "vertex", "table"]
    feature_group: str | None = Field(None, pattern=r"^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$")
    table: str | None = None
    entity_columns: list[ColumnName] = Field(min_length=1, max_length=5)
    store_entity_columns: list[ColumnName] | None = Field(None, min_length=1, max_length=5)
    event_time: ColumnName
    store_event_time: ColumnName | None = None  # default: the same name as event_time
    features: list[ColumnName] = Field(min_length=1, max_length=200)
    max_age_days: int | None = Field(None, ge=1, le=3650)

    @field_validator("table")
    @classmethod
    def _table_policy(cls, value: str | None) -> str | None:
        return None if value is None else check_source_uri(value)

    @model_validator(mode="after")
    def _store(self) -> FeatureJoin:
        if self.store in ("sagemaker", "vertex") and (self.feature_group is None or self.table is not None):
            raise ValueError(f"store {self.store!r} needs feature_group (and no table)")
        if self.store == "table" and (self.table is None or self.feature_group is not None):
            raise ValueError("store 'table' needs table (and no feature_group)")
        if self.store_entity_columns is not None and len(self.store_entity_columns) != len(
            self.entity_columns
        ):
            raise ValueError("store_entity_columns must name one store column per entity_columns entry")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features lists a column twice")
        overlap = set(self.features) & {*self.entity_columns, self.event_time}
        if overlap:
            raise ValueError(f"features {sorted(overlap)} are also the join's keys or time")
        return self

    @property
    def store_keys(self) -> list[str]:
        return list(self.store_entity_columns or self.entity_columns)

    @property
    def store_time(self) -> str:
        return self.store_event_time or self.event_time


class FeatureStoreSpec(_Model):
    """Offline feature-store joins ``ingest`` applies, in order, before it writes the day's partition."""

    joins: list[FeatureJoin] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _distinct(self) -> FeatureStoreSpec:
        names = [j.name for j in self.joins]
        if len(set(names)) != len(names):
            raise ValueError("feature_store.joins: each join needs its own name")
        features = [f for j in self.joins for f in j.features]
        twice = sorted({f for f in features if features.count(f) > 1})
        if twice:
            raise ValueError(f"feature_store.joins: {twice} come from more than one join")
        return self


class FeaturesSpec(_Model):
    """Which columns feed the model. ``include: null`` infers every column except target, ids and times."""

    include: list[str] | None = None
    exclude: list[str] = []
    id_columns: list[str] = []
    time_columns: list[str] = []
    categorical: list[str] = []


class ExpectationSpec(_Model):
    """One Great Expectations 1.x expectation: its snake_case type and its arguments."""

    type: str
    kwargs: dict[str, Any] = {}  # each argument checked by mlops_core.spec.catalog.check_expectation_args

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        # YAML short form: ``- expect_column_values_to_not_be_null: {column: x}``
        if isinstance(data, dict) and len(data) == 1 and "type" not in data:
            ((name, kwargs),) = data.items()
            return {"type": name, "kwargs": kwargs or {}}
        return data

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in EXPECTATIONS:
            close = sorted(e for e in EXPECTATIONS if value.split("_to_")[0] in e)[:5]
            hint = f" (close: {', '.join(close)})" if close else ""
            raise ValueError(f"unknown expectation {value!r}{hint}; see mlops_core.spec.catalog.EXPECTATIONS")
        return value

    @model_validator(mode="after")
    def _arguments(self) -> ExpectationSpec:
        problems = check_expectation_args(self.type, dict(self.kwargs))
        if problems:
            raise ValueError(f"{self.type}: " + "; ".join(problems))
        return self


class ContractSpec(_Model):
    """The data contract learned from the champion's training data and checked on every new partition.

    Recorded with each model at training (``contract.json``): the column set, dtypes, null share,
    category sets and numeric ranges. ``validate`` checks a new partition against the champion's
    contract before training, scoring and monitoring. Structural rules (a missing or emptied column, a
    changed type, the target without labels, an extra column with ``extra_columns: refuse``) fail
    with the column, the expected and the observed value; distribution rules (the tolerances
    below: unseen categories, ranges, null shares) only warn, everywhere: a retrain learns its own
    contract, and the gate decides. Works with no user-written expectations.
    """

    enabled: bool = True
    null_share_margin: float = Field(0.05, ge=0.0, le=1.0)  # allowed rise of a column's null share
    new_category_share: float = Field(0.01, ge=0.0, le=1.0)  # share of rows with unseen categories
    range_margin: float = Field(0.25, ge=0.0, le=100.0)  # widening of [min, max], in units of its width
    out_of_range_share: float = Field(0.01, ge=0.0, le=1.0)  # share of rows allowed outside it
    extra_columns: Literal["allow", "refuse"] = "allow"


class SearchParam(_Model):
    """One searched parameter: a range (``low``..``high``, ``log`` for a log scale) or ``choices``.

    Whole-number parameters (``n_estimators``, ``max_depth``...) are searched as integers. Every
    bound and choice must itself be an allowed value of the parameter (estimators.PARAM_BOUNDS).
    """

    low: float | None = Field(None, allow_inf_nan=False)
    high: float | None = Field(None, allow_inf_nan=False)
    log: bool = False
    choices: list[Scalar] | None = Field(None, min_length=2, max_length=20)

    @model_validator(mode="after")
    def _one_kind(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if ranged == (self.choices is not None):
            raise ValueError("give either low and high, or choices")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
        elif self.log:
            raise ValueError("log applies to a range, not to choices")
        return self


class SearchSpec(_Model):
    """A bounded hyperparameter search (Optuna, seeded TPE) on the *training* rows only.

    Each trial is scored by ``cv_folds``-fold cross-validation on the training rows (the holdout
    is split off before and never seen), on ``evaluation.primary_metric``; a trial whose running
    mean falls below the median of earlier trials at the same fold is pruned. The best trial's
    params (over ``model.params``) train the challenger, which goes through the same gate. Cost:
    at most ``trials`` x ``cv_folds`` fits, and never longer than ``timeout_minutes``.

    ``tuner``: ``local`` runs the trials with Optuna inside the training process (the worker, or
    the remote training job); ``platform`` runs each trial as a job of the training backend's own
    tuning service (SageMaker automatic model tuning, Vertex AI hyperparameter tuning, an Azure ML
    sweep), ``parallel_trials`` at a time, in a ``search`` task before ``train``
    (:mod:`mlops_core.model.tuning`). The trials score the same folds of the same training rows either
    way. Platform cost: at most ``trials`` jobs of at most ``timeout_minutes`` each.
    """

    params: dict[str, SearchParam] = Field(min_length=1, max_length=10)
    trials: int = Field(20, ge=1, le=200)
    cv_folds: int = Field(3, ge=2, le=10)
    timeout_minutes: int = Field(30, ge=1, le=24 * 60)
    pruning: bool = True
    tuner: Literal["local", "platform"] = "local"
    parallel_trials: int = Field(2, ge=1, le=20)  # tuner platform: trials at a time

    @model_validator(mode="after")
    def _parallel(self) -> SearchSpec:
        if "parallel_trials" in self.model_fields_set and self.parallel_trials > self.trials:
            raise ValueError(f"parallel_trials ({self.parallel_trials}) cannot exceed trials ({self.trials})")
        return self

    @property
    def concurrent(self) -> int:
        """Trials at a time (the default 2 never above ``trials``)."""
        return min(self.parallel_trials, self.trials)


class ModelSpec(_Model):
    """An allow-listed estimator family, its constructor params and the seed."""

    family: str
    params: dict[str, Scalar] = {}
    seed: int = Field(42, ge=0, le=2**31 - 1)
    # Save (and load) the model with cloudpickle when skops cannot: unpickling runs code, so
    # anyone who can write the artifact store could run code on the workers. Off by default.
    allow_pickle: bool = False
    search: SearchSpec | None = None

    @field_validator("family")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in families():
            raise ValueError(
                f"{value!r} is not in the estimator allow-list; choose one of: {', '.join(families())}"
            )
        return value


class HoldoutSpec(_Model):
    """How the held-out rows are chosen: ``random`` (stratified for classification) or ``time`` (latest rows)."""

    strategy: Literal["random", "time"] = "random"
    fraction: float = Field(0.2, ge=0.05, le=0.5)
    column: str | None = None
    seed: int = Field(7, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _time_column(self) -> HoldoutSpec:
        if self.strategy == "time" and not self.column:
            raise ValueError("holdout.strategy 'time' needs holdout.column (rows are ordered by it)")
        return self


class BootstrapSpec(_Model):
    """Paired bootstrap of (challenger - champion) on the primary metric."""

    n_resamples: int = Field(1000, ge=100, le=20000)
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class ThresholdSearch(_Model):
    """Choose the decision threshold on validation folds of the training rows (never the holdout).

    The threshold is a cut on P(positive_class). ``f1`` / ``balanced_accuracy``: the best of that
    metric. ``recall_at_precision`` (with ``min_precision``): the most recall whose precision stays
    at or above it. ``precision_at_recall`` (with ``min_recall``): the most precision that still
    finds ``min_recall`` of the positives (a target recall).
    """

    optimize: Literal["f1", "balanced_accuracy", "recall_at_precision", "precision_at_recall"] = "f1"
    min_precision: float | None = Field(None, gt=0.0, lt=1.0)  # for recall_at_precision
    min_recall: float | None = Field(None, gt=0.0, lt=1.0)  # for precision_at_recall
    folds: int = Field(3, ge=2, le=10)

    @field_validator("optimize", mode="before")
    @classmethod
    def _alone_is_degenerate(cls, value: Any) -> Any:
        # recall alone is 1.0 at threshold 0 (every row positive), precision alone at the top score
        if value in ("recall", "precision"):
            raise ValueError(
                f"optimize: {value} alone picks a degenerate threshold (recall is 1.0 when every row is "
                "positive); to target a recall use optimize: precision_at_recall with min_recall: 0.8, "
                "to get the most recall at a precision use optimize: recall_at_precision with min_precision"
            )
        return value

    @model_validator(mode="after")
    def _constraint(self) -> ThresholdSearch:
        if (self.optimize == "recall_at_precision") != (self.min_precision is not None):
            raise ValueError("optimize: recall_at_precision needs min_precision (and only it uses it)")
        if (self.optimize == "precision_at_recall") != (self.min_recall is not None):
            raise ValueError("optimize: precision_at_recall needs min_recall (and only it uses it)")
        return self


class SliceColumn(_Model):
    """A column to evaluate separately; numeric columns are cut at ``bins`` (edges, ascending)."""

    column: str = Field(min_length=1, max_length=128)
    bins: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(None, min_length=2, max_length=50)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @field_validator("bins")
    @classmethod
    def _ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(b >= a for a, b in zip(value[1:], value, strict=False)):
            raise ValueError("bins must be strictly ascending edges, e.g. [0, 30, 50, 120]")
        return value


# Metrics a slice can be judged on: the holdout metrics plus the fairness ones fairlearn defines.
SLICE_ONLY_METRICS = ("selection_rate", "false_positive_rate", "false_negative_rate")


class SlicesSpec(_Model):
    """Fairness and slices in the gate: each slice of each column is scored apart on the holdout.

    A slice whose whole interval (Wilson for proportions such as recall, precision, accuracy;
    bootstrap otherwise) lies below a ``floors`` value (above it for a lower-is-better metric), or
    a ``max_gap`` between the best and the worst slice above its bound, rejects the challenger with
    the slice, the value, the interval and the bound in the reasons. Slices with fewer than
    ``min_rows`` holdout rows are reported as not judged, and so are the metrics that depend on
    the positive class (recall, precision, f1, false_negative_rate, roc_auc, average_precision)
    on a slice with fewer than ``min_positives`` positive rows (``small: reject`` turns either
    into a rejection). Slice-only columns are never model features unless listed under
    ``features.include`` or ``features.categorical``.
    """

    columns: list[SliceColumn] = Field(min_length=1, max_length=10)
    metrics: list[str] = Field(["recall"], min_length=1, max_length=10)
    floors: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = {}
    max_gap: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1e12)]] = {}
    min_rows: int = Field(30, ge=1, le=1_000_000)
    # binary: positive rows a slice needs before its positive-class metrics are judged
    min_positives: int = Field(10, ge=0, le=1_000_000)
    small: Literal["report", "reject"] = "report"


class EvaluationSpec(_Model):
    """The gate: floors on any metric, and a margin over the champion on the primary metric.

    ``min_improvement`` is in the metric's own units and its better direction: the lower end of
    the bootstrap interval of the improvement must be *above* it, so an equal model never replaces
    the champion.
    """

    primary_metric: str
    floors: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = {}
    min_improvement: float = Field(0.0, ge=0.0, le=1e6, allow_inf_nan=False)
    bootstrap: BootstrapSpec = BootstrapSpec()
    holdout: HoldoutSpec = HoldoutSpec()
    # binary only: the probability of positive_class at or above which a row is positive. A
    # number fixes it; {optimize: ...} chooses it on validation folds (ThresholdSearch). The model
    # itself carries it (sklearn's FixedThresholdClassifier), so scoring, the smoke test and
    # endpoints all use it. docs/imbalanced.md explains each option.
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | ThresholdSearch | None = None
    slices: SlicesSpec | None = None


class TrainingSpec(_Model):
    """Where training runs. ``auto``: the cloud profile's backend (``in_worker`` on ``local``).

    Remote backends run the same training code (``python -m mlops_core.model.remote``) as a SageMaker
    training job, a Vertex AI custom job or an Azure ML command job; the model lands in MLflow
    with the same lineage tags either way.
    """

    backend: Literal["auto", "in_worker", "sagemaker", "vertex", "azureml"] = "auto"
    instance_type: str | None = Field(None, max_length=64)  # default: the profile's
    timeout_minutes: int = Field(120, ge=5, le=7 * 24 * 60)


class ApprovalSpec(_Model):
    """A person approves a promotion between ``register`` and ``deploy`` (Airflow's human-in-the-loop
    ``ApprovalOperator``: the Required Actions page, or the REST API). Approve deploys; reject or
    no answer within ``timeout_minutes`` skips deploy. The decision, who and when are recorded on
    the model version. ``assigned_users``: Airflow user names allowed to answer (empty: anyone
    who may act on the DAG)."""

    required: bool = True
    assigned_users: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field([], max_length=20)
    timeout_minutes: int = Field(24 * 60, ge=1, le=30 * 24 * 60)


class AutoscalingSpec(_Model):
    """Instances between ``min_instances`` and ``max_instances``, scaled on one target.

    SageMaker: Application Auto Scaling on the variant (target tracking on invocations per
    instance, or on the variant's CPU utilisation). Vertex AI: the deployed model's min/max
    replicas (CPU target; Vertex's default 60 % when unset). Azure ML: ``TargetUtilization``
    scale settings (CPU; 70 % when unset). KServe: the predictor's ``minReplicas`` /
    ``maxReplicas``, and ``scaleMetric: cpu`` with ``scaleTarget`` for a CPU target (Knative's
    concurrency scaling when unset). Invocations per instance is SageMaker's only; the cooldowns
    are SageMaker's too (the others scale on their own timings).
    """

    min_instances: int = Field(1, ge=1, le=100)
    max_instances: int = Field(ge=1, le=100)
    target_cpu_percent: int | None = Field(None, ge=1, le=100)
    target_invocations_per_instance: float | None = Field(None, gt=0, le=1_000_000, allow_inf_nan=False)
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(60, ge=0, le=3600)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is above max_instances ({self.max_instances})"
            )
        if self.target_cpu_percent is not None and self.target_invocations_per_instance is not None:
            raise ValueError("scale on one target: target_cpu_percent or target_invocations_per_instance")
        return self


# A Kubernetes resource quantity as people write CPU and memory: 500m, 1, 1.5, 512Mi, 2Gi, 1G
_QUANTITY = r"^[0-9]{1,6}(\.[0-9]{1,3})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"


class KServeSpec(_Model):
    """The predictor's pod on the ``kserve`` target (``deployment.kserve``); all optional.

    ``cpu`` / ``memory`` are the container's requests, ``cpu_limit`` / ``memory_limit`` its limits
    (default: the requests); with none of them the ServingRuntime's defaults apply. ``runtime``
    names a ServingRuntime (default: the one KServe picks for ``mlflow`` on the V2 protocol,
    ``kserve-mlserver``). Cluster-wide values (namespace, service account, ingress) are the cloud
    profile's ``kserve_*`` settings, not the pipeline's.
    """

    cpu: str | None = Field(None, pattern=_QUANTITY)
    memory: str | None = Field(None, pattern=_QUANTITY)
    cpu_limit: str | None = Field(None, pattern=_QUANTITY)
    memory_limit: str | None = Field(None, pattern=_QUANTITY)
    runtime: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class DeploymentSpec(_Model):
    """Where the champion goes. ``auto``: the cloud profile's target.

    ``local``: the MLflow alias ``champion`` is the deployment (one model, nothing to split, so
    ``canary``/``blue_green`` act as ``all_at_once`` there). Endpoint targets (``sagemaker``,
    ``vertex``, ``azureml``, ``kserve``) shift ``canary_percent`` of the traffic to the new
    version, smoke-test the endpoint, then promote it to 100 % or roll back. ``kserve``: a KServe
    InferenceService on the cluster of the profile's ``kubernetes_conn_id``; ``instance_type`` is
    then a node selector on ``node.kubernetes.io/instance-type`` and ``kserve`` sizes the pod.
    """

    target: Literal["auto", "local", "sagemaker", "vertex", "azureml", "kserve"] = "auto"
    strategy: Literal["all_at_once", "blue_green", "canary"] = "all_at_once"
    canary_percent: int = Field(10, ge=1, le=50)
    canary_wait_minutes: int = Field(10, ge=0, le=24 * 60)
    instance_type: str | None = Field(None, max_length=64)  # default: the profile's
    instance_count: int = Field(1, ge=1, le=100)
    smoke_rows: int = Field(50, ge=1, le=100_000)
    tolerance: float = Field(1e-6, ge=0.0, le=1.0)
    approval: ApprovalSpec | None = None
    autoscaling: AutoscalingSpec | None = None
    kserve: KServeSpec | None = None

    @model_validator(mode="after")
    def _strategy(self) -> DeploymentSpec:
        if self.target == "local" and self.strategy != "all_at_once":
            raise ValueError(
                f"deployment.strategy {self.strategy!r} needs an endpoint target (sagemaker, vertex, azureml, "
                "kserve); the local target moves the champion alias all at once"
            )
        if self.kserve is not None and self.target not in ("auto", "kserve"):
            raise ValueError(
                f"deployment.kserve sizes a KServe predictor; target {self.target!r} does not read it "
                "(set target: kserve, or remove the kserve block)"
            )
        if self.autoscaling is not None:
            if self.target == "local":
                raise ValueError(
                    "deployment.autoscaling needs an endpoint target (sagemaker, vertex, azureml, kserve)"
                )
            if self.instance_count != 1:
                raise ValueError(
                    "deployment.instance_count and deployment.autoscaling both size the endpoint; "
                    "with autoscaling, set autoscaling.min_instances instead"
                )
            if (
                self.target in ("vertex", "azureml", "kserve")
                and self.autoscaling.target_invocations_per_instance
            ):
                raise ValueError(
                    f"deployment.autoscaling.target_invocations_per_instance is SageMaker's; {self.target} "
                    "scales on CPU: set target_cpu_percent"
                )
        return self

    @property
    def initial_instances(self) -> int:
        """Instances a new deployment starts with: ``autoscaling.min_instances`` or ``instance_count``."""
        return self.autoscaling.min_instances if self.autoscaling is not None else self.instance_count


class ScoringSpec(_Model):
    """The ``<name>_batch_scoring`` DAG: its schedule and how many days of source rows a run scores.

    ``lookback_days``: unset, the monitoring window (``monitoring.window_days``), so batch scoring
    reads what monitoring reads. ``min_rows``: the row-count rule of a scoring batch (and of the
    monitoring window's validation). A row-count expectation under ``expectations`` describes the
    training table; the scoring steps check ``min_rows`` instead (default 1: any non-empty batch
    scores; monitoring's own ``min_rows`` decides whether a day is judged for drift).
    """

    schedule: str | None = "@daily"
    lookback_days: int | None = Field(None, ge=1, le=366)
    min_rows: int = Field(1, ge=1, le=10_000_000)

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: _check_schedule(v)))


NumericMethod = Literal["ks", "wasserstein", "psi"]
CategoricalMethod = Literal["chi2", "jensen_shannon"]


class CalibrationSpec(_Model):
    """Drift calibrated against the training window's own variability (:class:`mlops_core.data.drift.Baseline`).

    At training, each period of ``period_days`` days (default: ``monitoring.window_days``) of the
    window is compared with the rest of it, as a monitored day is compared with the whole window,
    and the result is logged with the model (``drift_baseline.json``). A column that drifts in
    more than ``1 - quantile`` of those periods (a weekly or yearly cycle) only counts on a day
    whose statistic exceeds its window's ``quantile`` by ``statistic_margin`` (relative); the share
    threshold is ``max(drift_share, quantile of the periods' shares + share_margin)``. The periods
    come from ``date_column`` (default: ``source.partition.column``, then the first of
    ``features.time_columns``, then ``evaluation.holdout.column``); without a date the configured
    thresholds apply, and the run says so.
    """

    enabled: bool = True
    date_column: str | None = Field(None, min_length=1, max_length=128)
    period_days: int | None = Field(None, ge=1, le=90)
    quantile: float = Field(0.95, ge=0.5, le=1.0)
    share_margin: float = Field(0.1, ge=0.0, le=1.0)
    statistic_margin: float = Field(0.25, ge=0.0, le=10.0)
    max_periods: int = Field(60, ge=4, le=1000)


class MonitoringSpec(_Model):
    """The ``<name>_monitoring`` DAG and the drift policy that triggers retraining.

    Drift is judged per column (``numeric_method`` / ``categorical_method``, thresholds from
    :data:`mlops_core.data.drift.DEFAULT_THRESHOLDS` unless overridden, and, for a column that varies
    with the calendar, above the training window's own variability: ``calibration``); a day
    *drifts* when the share of drifted columns reaches the share threshold (``drift_share``, or
    higher when the window drifts against itself that much), when any of ``critical_columns``
    drifted, or (``prediction_drift: policy``, the default) when the model's predictions drifted
    against its holdout predictions. ``weighting: importance`` (the default): each column counts
    with the champion's feature importance, recorded at training (equal weights when it recorded
    none). Retraining fires when the last ``consecutive_days`` days all drifted, each with at
    least ``min_rows`` rows, and at least ``cooldown_days`` have passed since the current
    champion's training day (``cooldown_from: promotion``; ``attempt``: since the last training
    run, promoted or not). Backfilled days fill the history but fire only with ``retrain_on_backfill``.

    ``report``: when the Evidently HTML report is built: every day (``always``), on drifted days
    (``drifted``, the default: the day drifted, as above), or only when a run asks for it (``never``; the monitoring DAG's ``report`` param
    builds it for that run in every mode). The per-column verdicts (``drift.json``) are always written.
    """

    enabled: bool = True
    schedule: str | None = "@daily"
    reference: str = Field("champion_training", min_length=1)
    window_days: int = Field(1, ge=1, le=90)
    columns: list[str] | None = None
    numeric_method: NumericMethod = "ks"
    categorical_method: CategoricalMethod = "chi2"
    column_methods: dict[str, NumericMethod | CategoricalMethod] = {}
    column_thresholds: dict[str, Annotated[float, Field(ge=0.0, le=100.0)]] = {}
    drift_share: float = Field(0.3, gt=0.0, le=1.0)
    weighting: Literal["equal", "importance"] = "importance"
    # "policy": a day whose predictions drifted (against the champion's holdout predictions) drifts
    prediction_drift: Literal["policy", "report"] = "policy"
    calibration: CalibrationSpec = CalibrationSpec()
    critical_columns: list[str] = Field([], max_length=1000)
    min_rows: int = Field(100, ge=1, le=10_000_000)
    consecutive_days: int = Field(2, ge=1, le=30)
    cooldown_days: int = Field(7, ge=0, le=365)
    # counted from the current champion's training day (a rejected retrain changes nothing) or
    # from the last training attempt, whatever the gate said
    cooldown_from: Literal["promotion", "attempt"] = "promotion"
    sample_size: int = Field(10_000, ge=100, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    retrain_on_backfill: bool = False
    # the Evidently HTML report (a few seconds and ~5 MB a day); the JSON verdicts are always written
    report: Literal["always", "drifted", "never"] = "drifted"

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: _check_schedule(v)))

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value != "champion_training" and not value.startswith("${MLOPS_LAKE}/"):
            raise ValueError(
                "reference is 'champion_training' (the champion's training snapshot) or a partition of the "
                "pipeline's own lake prefix, written ${MLOPS_LAKE}/<name>/<stage>/ds=YYYY-MM-DD"
            )
        if ".." in value.split("/"):
            raise ValueError("reference may not contain '..'")
        return value


class DecaySpec(_Model):
    """Retrain on model decay: the realized ``metric`` (default: the primary one) judged on its
    bootstrap interval, never the point estimate.

    A day decays when the whole interval is on the wrong side of ``floor`` (default:
    ``evaluation.floors[metric]``, if any), or worse than the ``reference`` by more than
    ``max_drop`` (in the metric's own units; "worse" means lower for a higher-is-better metric,
    so the bound is ``reference - max_drop``, and higher for a lower-is-better one such as rmse,
    so the bound is ``reference + max_drop``).

    ``reference``: ``realized`` (default) is the champion's own realized metric on its first
    ``baseline_days`` evaluated prediction days after it was deployed (the mean of those days;
    until they exist only the floor judges); ``holdout`` is the metric on the champion's holdout
    at training (which may be harder or easier than production data); ``both`` decays on either.
    Retraining fires after ``days`` consecutive evaluated days that decayed, each with at least
    ``min_rows`` labelled rows (and ``monitoring.cooldown_days`` since the last training, as for
    drift)."""

    enabled: bool = True
    metric: str | None = None
    floor: float | None = Field(None, allow_inf_nan=False, ge=-1e12, le=1e12)
    reference: Literal["realized", "holdout", "both"] = "realized"
    baseline_days: int = Field(7, ge=1, le=90)
    max_drop: float | None = Field(0.05, allow_inf_nan=False, ge=0.0, le=1e12)
    days: int = Field(2, ge=1, le=30)
    # labelled rows a day needs to be judged: the interval carries the uncertainty of a small day
    min_rows: int = Field(20, ge=1, le=10_000_000)


class FeedbackSpec(_Model):
    """Ground truth that arrives after the predictions: where the labels land and how they join.

    For monitored day D the ``performance`` step joins the predictions made for
    D - ``delay_days`` (``monitor_predictions``) with the labels that have arrived, on
    ``key_columns`` (the id columns, or ``row_key`` when the data has none), and scores them.
    The labels source is read like ``source`` (same URI policy and partition modes: a date
    column there is the day a label *arrived*); a re-run of a day re-joins it (late labels),
    publishing a new version of that day, never a duplicate.
    """

    uri: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    conn_id: str | None = None
    partition: PartitionSpec = PartitionSpec()
    key_columns: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=10
    )
    label_column: str | None = None  # default: the pipeline's target
    delay_days: int = Field(7, ge=0, le=365)
    # alert (labels_unmatched) when more than this share of the labels read match no prediction
    max_unmatched_share: float | None = Field(0.5, ge=0.0, le=1.0)
    bootstrap: BootstrapSpec = BootstrapSpec()
    decay: DecaySpec = DecaySpec()

    @field_validator("uri")
    @classmethod
    def _uri_policy(cls, value: str) -> str:
        return check_source_uri(value)


AlertEvent = Literal[
    "policy_fired",
    "gate_rejected",
    "rolled_back",
    "validation_failed",
    "approval_waiting",
    "metric_below_floor",
    "labels_unmatched",
    "task_failed",
]
ALERT_EVENTS: tuple[AlertEvent, ...] = AlertEvent.__args__  # type: ignore[attr-defined]


class AlertsSpec(_Model):
    """Where events go: Airflow notifiers (email through the smtp provider, SNS through the
    amazon provider, Slack through the slack provider's incoming-webhook notifier) and, where the cloud profile exports metrics, a metric alarm on the
    realized primary metric. Recipients are addresses and topic ARNs, never credentials: the
    SMTP server and the AWS account come from Airflow connections."""

    events: list[AlertEvent] = Field(list(ALERT_EVENTS), min_length=1)
    email: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$", max_length=254)]] = (
        Field([], max_length=50)
    )
    smtp_conn_id: str = Field("smtp_default", min_length=1, max_length=250)
    # an Airflow connection of type Slack Incoming Webhook (the webhook URL is its secret)
    slack_conn_id: str | None = Field(None, min_length=1, max_length=250)
    sns_topic_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
    )
    metric_alarm: bool = False

    @model_validator(mode="after")
    def _somewhere(self) -> AlertsSpec:
        if not self.email and not self.sns_topic_arn and not self.slack_conn_id and not self.metric_alarm:
            raise ValueError(
                "alerts need at least one destination: email, sns_topic_arn, slack_conn_id or metric_alarm"
            )
        return self


_PER_CLASS = re.compile(r"^(recall|precision|f1)_(?!macro$|weighted$)(.+)$")


def _per_class_hint(name: str, problem: str) -> str:
    """How to get a per-class metric (``recall_bad``) the gate does not name that way."""
    match = _PER_CLASS.match(name)
    if not match:
        return ""
    metric, label = match.groups()
    if problem == "binary":
        return (
            f". Per-class metrics have no name of their own: {metric} is the {metric} of positive_class, so "
            f"set positive_class: {label} and use {metric} (the other class's recall is "
            "1 - false_positive_rate, a slice metric; balanced_accuracy is the mean recall of both)"
        )
    return (
        f". Per-class metrics have no name of their own: f1_macro and balanced_accuracy weigh every "
        f"class alike (a rare {label!r} counts as much as a common class); or frame {label!r} against "
        "the rest as a binary pipeline with positive_class"
    )


class PipelineSpec(_Model):
    """One model's whole lifecycle. See README "The pipeline YAML" for every field."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    owner: str = Field("mlops", min_length=1, max_length=64)
    description: str = ""
    schedule: str | None = None
    start_date: date = date(2026, 1, 1)
    end_date: date | None = None
    tags: list[Identifier] = []
    retries: int = Field(2, ge=0, le=10)
    retry_delay_minutes: float = Field(2.0, ge=0.0, le=1440.0)
    task_timeout_minutes: int = Field(60, ge=1, le=24 * 60)
    cloud: Literal["local", "aws", "gcp", "azure"] = "local"
    env: list[Annotated[str, Field(pattern=_ENV_NAME.pattern)]] = Field([], max_length=20)

    source: SourceSpec
    ingestion: IngestionSpec | None = None
    target: str
    problem_type: ProblemType
    positive_class: str | int | None = None
    features: FeaturesSpec = FeaturesSpec()
    feature_store: FeatureStoreSpec | None = None
    expectations: list[ExpectationSpec] = []
    contract: ContractSpec = ContractSpec()
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec
    deployment: DeploymentSpec = DeploymentSpec()
    scoring: ScoringSpec = ScoringSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    feedback: FeedbackSpec | None = None
    alerts: AlertsSpec | None = None

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: _check_schedule(v)))

    @field_validator("positive_class", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: Any) -> Any:
        # YAML 1.1 reads Yes/No/on/off/true/false as booleans; a label is never one
        if isinstance(value, bool):
            raise ValueError(
                f"YAML read the label as the boolean {value}; if the label is a word such as Yes, No, "
                'true or on, quote it: positive_class: "Yes"'
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        allowed = metrics_for(self.problem_type)
        for where, name in [("evaluation.primary_metric", self.evaluation.primary_metric)] + [
            (f"evaluation.floors.{m}", m) for m in self.evaluation.floors
        ]:
            if name not in allowed:
                raise ValueError(
                    f"{where}: {name!r} is not a {self.problem_type} metric; choose one of: {', '.join(allowed)}"
                    + _per_class_hint(name, self.problem_type)
                )
        check_params(self.model.family, dict(self.model.params), self.problem_type)
        self._check_search()
        if self.problem_type != "binary" and self.evaluation.threshold is not None:
            raise ValueError("evaluation.threshold applies to binary problems only")
        if self.problem_type == "regression" and self.positive_class is not None:
            raise ValueError("positive_class applies to binary problems only")
        if self.target in self.features.exclude + self.features.id_columns + self.features.time_columns:
            raise ValueError(f"target {self.target!r} is also listed under features")
        if self.features.include and self.target in self.features.include:
            raise ValueError(f"target {self.target!r} cannot be a feature (remove it from features.include)")
        self._check_slices(allowed)
        self._check_feedback(allowed)
        self._check_feature_store()
        return self

    def _check_search(self) -> None:
        search = self.model.search
        if search is None:
            return
        check_search(self.model.family, dict(self.model.params), search, self.problem_type)
        if search.tuner == "platform" and self.training.backend == "in_worker":
            raise ValueError(
                "model.search.tuner: platform runs trials on the training backend's tuning service; "
                "training.backend in_worker has none (use sagemaker, vertex, azureml or auto on a cloud "
                "profile, or tuner: local)"
            )
        if search.tuner == "local" and search.timeout_minutes >= self.training.timeout_minutes:
            raise ValueError(
                f"model.search.timeout_minutes ({search.timeout_minutes}) must be below "
                f"training.timeout_minutes ({self.training.timeout_minutes}): the final fit needs time too"
            )

    def _check_feature_store(self) -> None:
        if self.feature_store is None:
            return
        joined = {f for j in self.feature_store.joins for f in j.features}
        if self.target in joined:
            raise ValueError(f"feature_store: the target {self.target!r} cannot be a joined feature")

    def _check_slices(self, allowed: list[str]) -> None:
        sl = self.evaluation.slices
        if sl is None:
            return
        if self.problem_type != "binary":  # rates of the positive class (fairlearn's are binary only)
            fair = [m for m in sl.metrics if m in SLICE_ONLY_METRICS]
            if fair:
                raise ValueError(f"evaluation.slices.metrics: {fair} apply to binary problems only")
        names = set(allowed) | (set(SLICE_ONLY_METRICS) if self.problem_type == "binary" else set())
        for where, metric in [("metrics", m) for m in sl.metrics] + [
            (key, m) for key in ("floors", "max_gap") for m in getattr(sl, key)
        ]:
            if metric not in names:
                raise ValueError(
                    f"evaluation.slices.{where}: {metric!r} is not a {self.problem_type} slice metric; "
                    f"choose one of: {', '.join(sorted(names))}"
                )
        judged = set(sl.floors) | set(sl.max_gap)
        if not judged <= set(sl.metrics):
            raise ValueError(
                f"evaluation.slices: {sorted(judged - set(sl.metrics))} have a floor or max_gap but are not "
                "listed under evaluation.slices.metrics"
            )
        if self.target in {c.column for c in sl.columns}:
            raise ValueError(f"evaluation.slices: the target {self.target!r} cannot be a slice column")

    def _check_feedback(self, allowed: list[str]) -> None:
        fb = self.feedback
        if fb is None:
            return
        if not self.monitoring.enabled:
            raise ValueError(
                "feedback needs monitoring.enabled: the performance step runs in the monitoring DAG"
            )
        metric = fb.decay.metric or self.evaluation.primary_metric
        if metric not in allowed:
            raise ValueError(
                f"feedback.decay.metric: {metric!r} is not a {self.problem_type} metric; choose one of: "
                f"{', '.join(allowed)}"
            )
        if (
            fb.decay.enabled
            and fb.decay.floor is None
            and fb.decay.max_drop is None
            and (metric not in self.evaluation.floors)
        ):
            raise ValueError(
                "feedback.decay has nothing to judge against: set floor or max_drop, or a floor for "
                f"{metric!r} under evaluation.floors"
            )
        if fb.decay.enabled:
            self._check_decay_bounds(metric)
        if fb.partition.mode == "files" and "{ds}" not in fb.uri:
            raise ValueError("feedback.partition.mode 'files' needs '{ds}' in feedback.uri")

    def _check_decay_bounds(self, metric: str) -> None:
        """Refuse a decay policy whose bounds make every day decay, or make decay impossible."""
        fb = self.feedback
        assert fb is not None
        higher = METRICS[metric].higher_is_better
        low, high = _METRIC_RANGE.get(metric, (None, None))
        floor = fb.decay.floor if fb.decay.floor is not None else self.evaluation.floors.get(metric)
        where = "feedback.decay.floor" if fb.decay.floor is not None else f"evaluation.floors.{metric}"
        if floor is not None:
            always = (high is not None and floor > high) if higher else (floor <= (low or 0.0))
            never = (low is not None and floor <= low) if higher else (high is not None and floor >= high)
            if always:
                raise ValueError(
                    f"{where}: {floor:g} puts every possible {metric} "
                    f"{'below' if higher else 'above'} the floor, so every labelled day would decay; "
                    f"{metric} is {'higher' if higher else 'lower'}-is-better"
                    + (f" and lies in [{low:g}, {high:g}]" if low is not None and high is not None else "")
                )
            if never and fb.decay.max_drop is None:
                raise ValueError(
                    f"{where}: {floor:g} can never be crossed by {metric} and there is no max_drop: "
                    "the decay policy could never fire"
                )
        drop = fb.decay.max_drop
        if drop is not None and low is not None and high is not None and drop >= high - low and floor is None:
            raise ValueError(
                f"feedback.decay.max_drop: {drop:g} is the whole range of {metric} ([{low:g}, {high:g}]) "
                "and there is no floor: the decay policy could never fire"
            )

    def warnings(self) -> list[str]:
        """Legal but probably not meant: shown by ``mlops-airflow validate`` (the file still loads)."""
        found: list[str] = []
        fb = self.feedback
        if fb is None or not fb.decay.enabled:
            return found
        metric = fb.decay.metric or self.evaluation.primary_metric
        floor = fb.decay.floor if fb.decay.floor is not None else self.evaluation.floors.get(metric)
        if fb.decay.reference == "holdout" and floor is None:
            found.append(
                "feedback.decay: judged only against the champion's holdout "
                f"{metric} + max_drop, with no floor; when the holdout was harder than production data "
                "(a time holdout of the window's end, a noisier season) a real worsening never fires. "
                "Use reference: realized (the default) or both, or set feedback.decay.floor"
            )
        if fb.partition.mode != "snapshot" and fb.partition.lookback_days <= fb.delay_days:
            found.append(
                f"feedback.partition.lookback_days {fb.partition.lookback_days} <= delay_days {fb.delay_days}: "
                f"the run for day D reads labels that arrived in (D - {fb.partition.lookback_days}, D], so "
                f"labels of the prediction day D - {fb.delay_days} that arrived on that day or soon after are "
                f"never read; set lookback_days to at least delay_days + 1 ({fb.delay_days + 1})"
            )
        if self.source.partition.mode == "snapshot":
            found.append(
                "source.partition.mode 'snapshot' with feedback: every monitored day scores the whole source, "
                "so prediction days are not independent and decay.days counts the same rows again; use "
                "mode 'column' (a date column) for one prediction day per day"
            )
        elif self.monitoring.window_days > 1 and self.source.partition.mode != "column":
            found.append(
                f"monitoring.window_days {self.monitoring.window_days} with source.partition.mode "
                f"{self.source.partition.mode!r}: a monitored day's predictions cannot be split by day, so "
                "consecutive prediction days overlap; the decay streak counts one prediction day per "
                f"window ({self.monitoring.window_days} days apart). Use mode 'column' for one prediction "
                "day per day"
            )
        return found

    @property
    def scoring_window(self) -> int:
        """Days of source rows a batch scoring run reads: ``scoring.lookback_days``, else the monitoring window."""
        return self.scoring.lookback_days or self.monitoring.window_days

    @property
    def slice_columns(self) -> list[str]:
        """Columns the gate slices on (never features unless listed under ``features.include``)."""
        sl = self.evaluation.slices
        return [c.column for c in sl.columns] if sl is not None else []

    @property
    def primary(self) -> Any:
        return METRICS[self.evaluation.primary_metric]

    @property
    def registered_model_name(self) -> str:
        return self.name

    @property
    def drift_asset_uri(self) -> str:
        """URI of the Airflow Asset the monitoring DAG emits when retraining should happen."""
        return f"mlops://{self.name}/drift"

    def tag_list(self) -> list[str]:
        return ["mlops", f"pipeline:{self.name}", self.problem_type, *self.tags]


# the range a metric can take, where it is bounded (decay bounds outside it are refused)
_METRIC_RANGE: dict[str, tuple[float | None, float | None]] = {
    "roc_auc": (0.0, 1.0),
    "average_precision": (0.0, 1.0),
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "f1_weighted": (0.0, 1.0),
    "brier": (0.0, 1.0),
    "log_loss": (0.0, None),
    "rmse": (0.0, None),
    "mae": (0.0, None),
    "r2": (None, 1.0),
}


class SpecError(ValueError):
    """A pipeline YAML that cannot be used; the message names the file, each field and the fix."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source} is not a valid pipeline spec:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _allowed_fields(loc: tuple[Any, ...]) -> list[str] | None:
    model: Any = PipelineSpec
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return None
    return list(model.model_fields) if model is not None else None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "lambda"))))
    where = ".".join(str(p) for p in loc) or "pipeline"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_fields(loc)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown field{hint}"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a whole-pipeline rule: its message starts with the field it is about
        return msg
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    return f"{where}: {msg}{shown}"


def parse_spec(data: Any, source: str = "<spec>") -> PipelineSpec:
    """Validate a mapping (the parsed YAML) into a :class:`PipelineSpec` or raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(source, [f"the file must hold a mapping of fields, got {type(data).__name__}"])
    declared = {str(n) for n in data.get("env") or [] if isinstance(n, str)}
    problems = check_env_refs(data, declared)
    if problems:
        raise SpecError(source, problems)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, [_describe(dict(e)) for e in exc.errors()]) from None


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate one pipeline YAML."""
    path = Path(path)
    text = path.read_text()
    if len(text.encode()) > MAX_YAML_BYTES:
        raise SpecError(
            str(path),
            [f"the file is {len(text.encode())} bytes; a pipeline YAML may hold at most {MAX_YAML_BYTES}"],
        )
    if text.count("*") > 0 and re.search(r"(^|[\s\[{,:-])\*[A-Za-z0-9_-]+", text, re.M):
        raise SpecError(
            str(path), ["YAML aliases (*name) are not allowed in a pipeline spec; write the values out"]
        )
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    spec = parse_spec(data, str(path))
    if spec.name != path.stem:
        raise SpecError(
            str(path), [f"name: {spec.name!r} must equal the file name {path.stem!r} (one pipeline per file)"]
        )
    return spec
