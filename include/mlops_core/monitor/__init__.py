"""Monitoring: daily drift against the champion, the feedback loop and decay, metrics export."""

from __future__ import annotations
