"""Kubernetes (EKS, GKE, AKS): the KServe InferenceService target."""

from __future__ import annotations
