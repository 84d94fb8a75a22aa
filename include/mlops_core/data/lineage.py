"""Dataset lineage in MLflow for the lake's URIs: a ``lake`` dataset source MLflow has no resolver for.

Registered by training before it logs its inputs (:func:`mlops_core.model.training.train`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_LAKE_SCHEMES = {"abfs", "abfss", "az", "adl", "gcs", "s3a"}


@lru_cache(maxsize=1)
def register_lake_source() -> None:
    """Teach MLflow's dataset lineage the lake's URIs it has no resolver for (``abfs://``, ``gcs://``...).

    MLflow resolves ``s3://``, ``gs://`` and local paths itself; any other fsspec URI becomes a
    ``lake`` source that records the URI (loading goes through :mod:`mlops_core.data.storage`).
    """
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source

    class LakeDatasetSource(DatasetSource):
        def __init__(self, uri: str):
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "lake"

        def load(self) -> Any:
            from mlops_core.data import storage

            return storage.read_frame(self.uri)

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return isinstance(raw_source, str) and raw_source.split("://", 1)[0] in _LAKE_SCHEMES

        @classmethod
        def _resolve(cls, raw_source: Any) -> LakeDatasetSource:
            return cls(str(raw_source))

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> LakeDatasetSource:
            return cls(str(source_dict["uri"]))

    register_dataset_source(LakeDatasetSource)  # type: ignore[arg-type]  # the registry takes the class
