"""Hooks: connections and SDK clients (the cloud profile's, Azure ML's)."""

from __future__ import annotations
