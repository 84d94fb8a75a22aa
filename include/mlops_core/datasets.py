"""Example data: real public datasets that ship inside the scikit-learn wheel (nothing downloaded).

``breast_cancer``: Wisconsin Diagnostic Breast Cancer (UCI, CC BY 4.0), 569 rows, 30 numeric
features, binary target. ``diabetes``: Efron et al. 2004 diabetes data, 442 rows, regression.
Both are written to a landing zone as CSV with an ``event_date`` column that spreads the rows
over ``days`` days (seeded), so the logical date can select rows as it would in production.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from mlops_core.storage import filesystem, join

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = ("breast_cancer", "diabetes")


def load_example(name: str, end: date = date(2026, 1, 31), days: int = 31, seed: int = 0) -> pd.DataFrame:
    """The example table with ``record_id`` and ``event_date`` columns added."""
    import numpy as np
    import pandas as pd
    from sklearn import datasets

    if name == "breast_cancer":
        raw = datasets.load_breast_cancer(as_frame=True)
        frame = raw.frame.rename(columns=lambda c: c.replace(" ", "_"))
        frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    elif name == "diabetes":
        raw = datasets.load_diabetes(as_frame=True, scaled=False)
        frame = raw.frame.rename(columns={"target": "progression"})
        frame["sex"] = np.where(frame["sex"] == 1, "group_1", "group_2")  # coded 1/2 in the source
    else:
        raise ValueError(f"unknown example {name!r}; choose one of {EXAMPLES}")
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, days, size=len(frame))
    frame.insert(0, "event_date", [(end - timedelta(days=int(o))).isoformat() for o in offsets])
    frame.insert(0, "record_id", [f"{name[:2]}-{i:05d}" for i in range(len(frame))])
    return pd.DataFrame(frame)


def materialize(
    name: str, landing: str, filename: str | None = None, frame: pd.DataFrame | None = None
) -> str:
    """Write the example (or ``frame``) as CSV to ``<landing>/<name>/<filename>``; return its URI."""
    data = load_example(name) if frame is None else frame
    uri = join(landing, name, filename or f"{name}.csv")
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe(path, data.to_csv(index=False).encode())
    return uri
