"""Feature joins with every store this package knows: the offline table, SageMaker Feature Store
(:mod:`mlops_core.clouds.aws.features`) and Vertex AI Feature Store (:mod:`mlops_core.clouds.gcp.features`).

Above the clouds: the joins themselves (:mod:`mlops_core.data.features`) never import a cloud.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.clouds.aws.features import offline_store
from mlops_core.clouds.gcp.features import vertex_store
from mlops_core.data import features

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory

STORES: dict[str, features.StoreReader] = {"sagemaker": offline_store, "vertex": vertex_store}


def apply(
    spec: PipelineSpec,
    rows: pd.DataFrame,
    *,
    clients: ClientFactory | None = None,
    storage_options: Any = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`mlops_core.data.features.apply` with the clouds' stores."""
    return features.apply(spec, rows, clients=clients, storage_options=storage_options, stores=STORES)
