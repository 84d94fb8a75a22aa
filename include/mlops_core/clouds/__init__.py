"""One package per cloud: its client, training job, deploy target, tuning and features.

The clouds never import each other (an import-linter contract); what needs all of them
(:mod:`mlops_core.targets`, :mod:`mlops_core.feature_stores`) sits above."""

from __future__ import annotations
