"""Azure: Azure ML (command and sweep jobs, managed online endpoints) and Azure Monitor."""

from __future__ import annotations
