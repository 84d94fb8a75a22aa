"""Example data: real public datasets that ship inside the scikit-learn wheel (nothing downloaded).

``breast_cancer``: Wisconsin Diagnostic Breast Cancer (UCI, CC BY 4.0), 569 rows, 30 numeric
features, binary target. ``diabetes``: Efron et al. 2004 diabetes data, 442 rows, regression.
Both are written to a landing zone as CSV with an ``event_date`` column that spreads the rows
over ``days`` days (seeded), so the logical date can select rows as it would in production.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from mlops_core.data.filesystems import filesystem, join

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


# The documented drift used by the demo and the scheduler test: these columns are shifted by
# +1.0 of their standard deviation in the example data (12 of the 30 breast_cancer features).
DRIFT_COLUMNS = {
    "breast_cancer": [
        "mean_radius",
        "mean_texture",
        "mean_perimeter",
        "mean_area",
        "mean_smoothness",
        "mean_compactness",
        "worst_radius",
        "worst_texture",
        "worst_perimeter",
        "worst_area",
        "worst_smoothness",
        "worst_compactness",
    ],
    "diabetes": ["bmi", "bp", "s1", "s2", "s5"],
}


def daily_batch(
    name: str, day: date, rows: int = 200, *, drift: bool = False, shift_sd: float = 1.0, seed: int = 0
) -> pd.DataFrame:
    """A day of new rows: a seeded bootstrap sample of the real data with ``event_date = day``.

    ``drift=True`` shifts :data:`DRIFT_COLUMNS` by ``shift_sd`` standard deviations (the rest of
    the row, including the label, is unchanged), a documented and reproducible covariate shift.
    """
    import numpy as np

    base = load_example(name)
    rng = np.random.default_rng([seed, day.toordinal()])
    batch = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    if drift:
        for col in DRIFT_COLUMNS[name]:
            batch[col] = batch[col] + shift_sd * float(base[col].std())
    batch["event_date"] = day.isoformat()
    batch["record_id"] = [f"{name[:2]}-{day:%Y%m%d}-{i:05d}" for i in range(rows)]
    return batch


def append(name: str, landing: str, frame: pd.DataFrame, filename: str | None = None) -> str:
    """Add rows to the example's landing CSV (rows of the same ``event_date`` are replaced, so re-runs are idempotent)."""
    import pandas as pd

    uri = join(landing, name, filename or f"{name}.csv")
    fs, path = filesystem(uri)
    current = pd.read_csv(fs.open(path, "rb")) if fs.exists(path) else frame.iloc[0:0]
    current = current[~current["event_date"].isin(frame["event_date"].unique())]
    return materialize(name, landing, filename, frame=pd.concat([current, frame], ignore_index=True))


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
