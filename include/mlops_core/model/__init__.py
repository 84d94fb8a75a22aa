"""Models: training, search and tuning, evaluation and the gate, slices, thresholds, remote
training jobs, model cards."""

from __future__ import annotations
