"""What KServe reads and answers: lake URIs as its storage initializer reads them, and the V2
inference protocol (MLServer) of the smoke test's requests and predictions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops_core.deploy import DeploymentFailed

if TYPE_CHECKING:
    import pandas as pd


def kserve_storage_uri(uri: str, storage_account: str | None = None) -> str:
    """A lake URI as KServe's storage initializer reads it: ``s3://``, ``gs://`` or Azure Blob ``https://``.

    ``abfs://container/path`` (the lake's fsspec form, no account) needs ``storage_account``;
    ``abfss://container@account.dfs.core.windows.net/path`` names its own.
    """
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower() if sep else "file"
    if scheme in ("s3", "s3a"):
        return f"s3://{rest}"
    if scheme in ("gs", "gcs"):
        return f"gs://{rest}"
    if scheme in ("https", "http"):
        return uri
    if scheme in ("abfs", "abfss", "az"):
        container, _, path = rest.partition("/")
        account = storage_account
        if "@" in container:
            container, host = container.split("@", 1)
            account = host.split(".", 1)[0]
        if not account:
            raise ValueError(
                f"KServe cannot read the model folder {uri}: the URI names no storage account; set "
                "settings.storage_account in the azure cloud profile"
            )
        return f"https://{account}.blob.core.windows.net/{container}/{path}"
    raise ValueError(
        f"KServe's storage initializer cannot read {uri} (a {scheme} URI): the kserve target needs the "
        "lake on s3://, gs:// or Azure Blob (abfs://), which the cluster can reach"
    )


def _v2_column(series: pd.Series) -> tuple[str, list[Any], dict[str, str] | None]:
    """(datatype, data, parameters) of one column as a V2 input tensor; NaN and NA as null."""
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(series) and not series.isna().any():
        return "BOOL", [bool(v) for v in series], None
    if types.is_integer_dtype(series) and not series.isna().any():
        return "INT64", [int(v) for v in series], None
    if types.is_numeric_dtype(series) and not types.is_bool_dtype(series):
        values = [None if v is None or math.isnan(float(v)) else float(v) for v in series.astype("float64")]
        return "FP64", values, None
    texts = [None if pd.isna(v) else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in series]
    return "BYTES", texts, {"content_type": "str"}  # MLServer decodes BYTES as text with this


def v2_request(features: pd.DataFrame) -> dict[str, Any]:
    """A V2 ``InferenceRequest``: one ``[rows, 1]`` tensor per column, decoded by MLServer as a DataFrame."""
    inputs = []
    for column in features.columns:
        datatype, data, parameters = _v2_column(features[column])
        tensor: dict[str, Any] = {
            "name": str(column),
            "shape": [len(features), 1],
            "datatype": datatype,
            "data": data,
        }
        if parameters:
            tensor["parameters"] = parameters
        inputs.append(tensor)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def v2_predictions(answer: Any, where: str) -> list[Any]:
    """The first output tensor of a V2 ``InferenceResponse``, flattened (row-major)."""
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    data = (
        outputs[0].get("data")
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict)
        else None
    )
    if not isinstance(data, list):
        raise DeploymentFailed(
            f"{where} did not answer a V2 InferenceResponse with an output tensor (got {str(answer)[:200]}); "
            "is the predictor served with protocolVersion v2 (MLServer)?"
        )
    return _flat(data)
