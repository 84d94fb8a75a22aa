"""MLflow: tracking set-up, the model registry with its aliases, and sealed release decisions."""

from __future__ import annotations
