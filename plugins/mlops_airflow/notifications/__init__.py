"""Alerts through the notifiers Airflow's providers ship."""

from __future__ import annotations
