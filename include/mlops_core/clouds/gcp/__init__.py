"""Google Cloud: Vertex AI (models, endpoints, custom and tuning jobs), Cloud Monitoring, the
Vertex AI endpoint target and Vertex AI Feature Store."""

from __future__ import annotations
