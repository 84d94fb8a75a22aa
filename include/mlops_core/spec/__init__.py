"""The pipeline spec: one YAML file per model, validated by pydantic.

Cheap to import (pydantic + PyYAML only): the DAG loader calls :func:`load_spec` at every parse.
Unknown keys are errors (``extra="forbid"``), numbers have bounds, names come from allow-lists;
:class:`SpecError` names the file, each bad field and what is allowed.

This package's namespace is the spec's public API; the models live in one module per section
(:mod:`~mlops_core.spec.source`, :mod:`~mlops_core.spec.ingestion`, :mod:`~mlops_core.spec.features`,
:mod:`~mlops_core.spec.model`, :mod:`~mlops_core.spec.evaluation`, :mod:`~mlops_core.spec.deployment`,
:mod:`~mlops_core.spec.monitoring`, :mod:`~mlops_core.spec.alerts`), the root and the rules that span
sections in :mod:`~mlops_core.spec.pipeline`, reading a file in :mod:`~mlops_core.spec.loading`.
"""

from __future__ import annotations

from mlops_core.spec.alerts import ALERT_EVENTS, AlertEvent, AlertsSpec
from mlops_core.spec.common import ColumnName, Scalar
from mlops_core.spec.deployment import (
    ApprovalSpec,
    AutoscalingSpec,
    ChallengerSpec,
    DeploymentSpec,
    KServeSpec,
    ShadowSpec,
)
from mlops_core.spec.evaluation import (
    SLICE_ONLY_METRICS,
    BootstrapSpec,
    EvaluationSpec,
    HoldoutSpec,
    SliceColumn,
    SlicesSpec,
    ThresholdSearch,
)
from mlops_core.spec.features import (
    ContractSpec,
    ExpectationSpec,
    FeatureJoin,
    FeaturesSpec,
    FeatureStoreSpec,
)
from mlops_core.spec.ingestion import (
    INGESTION_DAGS,
    DataFactoryIngestion,
    DataflowIngestion,
    GlueIngestion,
    IngestionDag,
    IngestionSpec,
    JobParameter,
)
from mlops_core.spec.loading import MAX_YAML_BYTES, SpecError, check_env_refs, load_spec, parse_spec
from mlops_core.spec.model import ModelSpec, SearchParam, SearchSpec, TrainingSpec
from mlops_core.spec.monitoring import (
    CalibrationSpec,
    CategoricalMethod,
    DecaySpec,
    EstimateSpec,
    FeedbackSpec,
    MonitoringSpec,
    NumericMethod,
    ScoringSpec,
)
from mlops_core.spec.pipeline import Identifier, PipelineSpec
from mlops_core.spec.source import (
    DVC_REPO_SCHEMES,
    DVC_SCHEME,
    SOURCE_SCHEMES,
    DvcSpec,
    PartitionSpec,
    SourceSpec,
    check_dvc_path,
    check_dvc_repo,
    check_source_uri,
)

__all__ = [
    "ALERT_EVENTS",
    "DVC_REPO_SCHEMES",
    "DVC_SCHEME",
    "INGESTION_DAGS",
    "MAX_YAML_BYTES",
    "SLICE_ONLY_METRICS",
    "SOURCE_SCHEMES",
    "AlertEvent",
    "AlertsSpec",
    "ApprovalSpec",
    "AutoscalingSpec",
    "BootstrapSpec",
    "CalibrationSpec",
    "CategoricalMethod",
    "ColumnName",
    "ContractSpec",
    "DataFactoryIngestion",
    "DataflowIngestion",
    "DecaySpec",
    "ChallengerSpec",
    "DeploymentSpec",
    "DvcSpec",
    "EvaluationSpec",
    "ExpectationSpec",
    "FeatureJoin",
    "FeatureStoreSpec",
    "FeaturesSpec",
    "EstimateSpec",
    "FeedbackSpec",
    "GlueIngestion",
    "HoldoutSpec",
    "Identifier",
    "IngestionDag",
    "IngestionSpec",
    "JobParameter",
    "KServeSpec",
    "ModelSpec",
    "MonitoringSpec",
    "NumericMethod",
    "PartitionSpec",
    "PipelineSpec",
    "Scalar",
    "ScoringSpec",
    "SearchParam",
    "SearchSpec",
    "ShadowSpec",
    "SliceColumn",
    "SlicesSpec",
    "SourceSpec",
    "SpecError",
    "ThresholdSearch",
    "TrainingSpec",
    "check_dvc_path",
    "check_dvc_repo",
    "check_env_refs",
    "check_source_uri",
    "load_spec",
    "parse_spec",
]
