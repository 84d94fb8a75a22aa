"""Data: sources and the lake with its commit protocol, dates, the data contract, validation
(Great Expectations), feature joins and drift statistics."""

from __future__ import annotations
