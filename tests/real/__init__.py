"""Real public tables for the real-data tests (``tests/unit/test_real_tables.py``).

Each table is a gzipped CSV here, derived from R datasets as README.md (beside this file) says,
with its source and licence. :func:`load` reads one as a user's file would be read;
:func:`write_csv` writes it out uncompressed, where a user would keep it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
TABLES = ("flights", "caravan")


def load(name: str) -> pd.DataFrame:
    """The table as pandas reads the CSV (blanks are NaN)."""
    import pandas as pd

    if name not in TABLES:
        raise ValueError(f"unknown real table {name!r}; choose one of {TABLES}")
    return pd.read_csv(HERE / f"{name}.csv.gz")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as a plain CSV at ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
