"""The operators, one module per concern: the lifecycle steps, approval, search, remote jobs and
managed ingestion."""

from __future__ import annotations
