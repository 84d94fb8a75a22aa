"""The "Models" view and the lake reports, served under ``/mlops``."""

from __future__ import annotations
