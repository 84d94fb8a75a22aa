"""Triggers: the long waits of cloud steps, polled in the triggerer."""

from __future__ import annotations
