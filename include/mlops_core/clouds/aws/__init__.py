"""AWS: SageMaker training jobs and CloudWatch metrics, the SageMaker endpoint target, automatic
model tuning and SageMaker Feature Store."""

from __future__ import annotations
