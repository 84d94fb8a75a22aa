"""Operator extra links."""

from __future__ import annotations
