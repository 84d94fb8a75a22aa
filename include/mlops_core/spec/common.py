"""What every section of the pipeline spec shares: the strict model base, value types, the schedule rule."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None
ColumnName = Annotated[str, Field(min_length=1, max_length=128)]

_CRON_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@continuous"}
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")


class SpecModel(BaseModel):
    """The base of every section: unknown keys are errors, and a parsed spec is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_schedule(value: str | None) -> str | None:
    """A schedule: a 5-field cron expression, an Airflow preset (``@daily``...), or None (manual only)."""
    if value is None or value in _CRON_PRESETS:
        return value
    parts = value.split()
    if len(parts) != 5 or not all(_CRON_FIELD.match(p) for p in parts):
        raise ValueError(
            f"{value!r} is not a cron expression (5 fields) nor one of {sorted(_CRON_PRESETS)}; use null for manual only"
        )
    return value
