"""The bottom layer: where things live (settings), the ``${VAR}`` grammar, retries, HTML escaping.

Imports nothing else of the engine."""

from __future__ import annotations
