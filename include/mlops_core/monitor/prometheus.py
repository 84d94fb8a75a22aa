"""Model metrics for Prometheus, pushed to a Pushgateway (Prometheus' way for batch jobs).

Every lifecycle step that learns something a dashboard shows pushes it, once per run, as one
group ``{job="mlops", pipeline=<name>, stage=<stage>}``: a push replaces that group's previous
values and nothing else, so the newest value of every step stays visible between runs and the
Pushgateway's own ``push_time_seconds`` tells how fresh it is. Counters (deployments, rollbacks,
gate decisions) are not incremented by the pusher: they are counted from the registry's tags at
push time, so a retried task cannot count twice and a restarted Pushgateway loses nothing.

Enabled by ``MLOPS_PROMETHEUS_PUSHGATEWAY`` (e.g. ``http://pushgateway:9091``). A push failure is
logged, never raised: monitoring must not fail a model's lifecycle.

The Pushgateway of the compose stack takes pushes with basic auth only (its ``--web.config.file``),
so fake drift or decay series cannot drive alerts. The push authenticates with
``MLOPS_PROMETHEUS_PUSHGATEWAY_USER`` and ``MLOPS_PROMETHEUS_PUSHGATEWAY_PASSWORD`` (or
``..._PASSWORD_FILE``: a Docker secret), else with the URL's own ``user:password@``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)

ENV = "MLOPS_PROMETHEUS_PUSHGATEWAY"
USER_ENV = f"{ENV}_USER"
PASSWORD_ENV = f"{ENV}_PASSWORD"
PASSWORD_FILE_ENV = f"{ENV}_PASSWORD_FILE"
JOB = "mlops"
TIMEOUT_SECONDS = 5.0

# name -> (type, help). Labels: job, pipeline, stage, plus ``metric`` / ``decision`` where shown.
METRICS: dict[str, tuple[str, str]] = {
    "mlops_holdout_metric": ("gauge", "challenger's metric on the held-out rows (label metric)"),
    "mlops_drift_share": ("gauge", "share of feature columns that drifted on the monitored day"),
    "mlops_drifted_columns": ("gauge", "number of feature columns that drifted on the monitored day"),
    "mlops_drift_detected": ("gauge", "1 if the monitored day drifted (share at or above drift_share)"),
    "mlops_realized_metric": ("gauge", "realized metric on delayed labels, point estimate (label metric)"),
    "mlops_realized_metric_lower": ("gauge", "lower end of the realized metric's bootstrap interval"),
    "mlops_realized_metric_upper": ("gauge", "upper end of the realized metric's bootstrap interval"),
    "mlops_realized_metric_floor": ("gauge", "the decay floor the realized metric is judged against"),
    "mlops_labelled_rows": ("gauge", "labelled rows behind the realized metric"),
    "mlops_decay_detected": ("gauge", "1 if the realized metric decayed on the judged day"),
    "mlops_gate_accepted": ("gauge", "1 if the last gate decision promoted the challenger (or forced)"),
    "mlops_gate_decisions_total": ("counter", "registered versions by gate decision (label decision)"),
    "mlops_champion_version": ("gauge", "model version the champion alias points at (0: none)"),
    "mlops_deployments_total": ("counter", "versions promoted to champion, counted on the registry"),
    "mlops_rollbacks_total": ("counter", "versions rolled back after a failed deploy or smoke test"),
    "mlops_rollback_failed": ("gauge", "1 if the last rollback could not restore the previous champion"),
}


@dataclass
class Sample:
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def gateway() -> str | None:
    url = os.environ.get(ENV, "").strip()
    return url or None


def credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without userinfo, (user, password) or None)``: the env vars first, then the URL's own."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    user = os.environ.get(USER_ENV, "").strip()
    password = os.environ.get(PASSWORD_ENV, "")
    if user and not password and os.environ.get(PASSWORD_FILE_ENV):
        with open(os.environ[PASSWORD_FILE_ENV], encoding="utf-8") as handle:
            password = handle.read().strip()
    if user:
        return bare, (user, password)
    if parts.username is not None:
        return bare, (unquote(parts.username), unquote(parts.password or ""))
    return bare, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def from_metrics(values: Mapping[str, Any]) -> list[Sample]:
    """Samples from a step's metric dict: ``holdout_<m>`` / ``realized_<m>`` get a ``metric`` label."""
    out: list[Sample] = []
    for key, raw in values.items():
        value = _number(raw)
        if value is None:
            continue
        for prefix in ("holdout", "realized"):
            if key.startswith(prefix + "_"):
                out.append(Sample(f"mlops_{prefix}_metric", value, {"metric": key[len(prefix) + 1 :]}))
                break
        else:
            name = "mlops_drifted_columns" if key == "n_drifted" else f"mlops_{key}"
            if name in METRICS:
                out.append(Sample(name, value))
    return out


def performance_samples(day: Mapping[str, Any], floor: float | None) -> list[Sample]:
    """Samples of a judged prediction day (:class:`mlops_core.monitor.feedback.DayPerformance` as a dict)."""
    metric = {"metric": str(day.get("metric"))}
    pairs: list[tuple[str, Any, dict[str, str]]] = [
        ("mlops_realized_metric", day.get("value"), metric),
        ("mlops_realized_metric_lower", day.get("low"), metric),
        ("mlops_realized_metric_upper", day.get("high"), metric),
        ("mlops_realized_metric_floor", floor, metric),
        ("mlops_labelled_rows", day.get("rows"), {}),
        ("mlops_decay_detected", bool(day.get("decayed")), {}),
    ]
    out = []
    for name, raw, labels in pairs:
        value = _number(raw)
        if value is not None:
            out.append(Sample(name, value, labels))
    return out


def registry_samples(model_name: str) -> list[Sample]:
    """Champion version and the counters, counted on the registry's tags (exact, retry-proof)."""
    from mlops_core.runs import registry

    c = registry.client()
    versions = c.search_model_versions(f"name='{model_name}'", max_results=10000)
    decisions = {"promote": 0, "reject": 0, "forced": 0}
    promoted = rolled_back = 0
    for mv in versions:
        tags = mv.tags or {}
        gate = tags.get(registry.GATE_TAG)
        if gate in decisions:  # every version ever judged (superseded too): never goes down
            decisions[gate] += 1
        promoted += tags.get("mlops.promoted") == "true"
        rolled_back += tags.get("mlops.rolled_back") == "true"
    champion = registry.alias_version(model_name, registry.CHAMPION)
    return [
        Sample("mlops_champion_version", float(champion or 0)),
        Sample("mlops_deployments_total", float(promoted)),
        Sample("mlops_rollbacks_total", float(rolled_back)),
        *[Sample("mlops_gate_decisions_total", float(n), {"decision": d}) for d, n in decisions.items()],
    ]


class _Collector:
    """One push's samples as metric families (a prometheus_client custom collector)."""

    def __init__(self, samples: Iterable[Sample]):
        self.samples = list(samples)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        by_name: dict[str, list[Sample]] = {}
        for s in self.samples:
            by_name.setdefault(s.name, []).append(s)
        for name, samples in by_name.items():
            kind, help_text = METRICS[name]
            labels = sorted(samples[0].labels)
            if kind == "counter":
                family: Any = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=labels)
            else:
                family = GaugeMetricFamily(name, help_text, labels=labels)
            for s in samples:
                family.add_metric([s.labels[k] for k in labels], s.value)
            yield family


def exposition(samples: Iterable[Sample]) -> bytes:
    """The samples in Prometheus' text format (what a push sends)."""
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(samples))
    return generate_latest(reg)


def push(pipeline: str, stage: str, samples: Iterable[Sample], url: str | None = None) -> bool:
    """Replace the ``{pipeline, stage}`` group on the Pushgateway; False (logged) if it failed or is off."""
    url = url or gateway()
    samples = [s for s in samples if s.name in METRICS]
    if url is None or not samples:
        return False
    from prometheus_client import CollectorRegistry, push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(samples))
    try:
        url, login = credentials(url)

        def handler(url: str, method: str, timeout: float | None, headers: list[Any], data: bytes) -> Any:
            if login is None:
                return default_handler(url, method, timeout, headers, data)
            return basic_auth_handler(url, method, timeout, headers, data, login[0], login[1])

        push_to_gateway(
            url,
            job=JOB,
            registry=reg,
            grouping_key={"pipeline": pipeline, "stage": stage},
            timeout=TIMEOUT_SECONDS,
            handler=handler,
        )
    except Exception as err:  # never fail the lifecycle for a dashboard
        from mlops_core.base.settings import redact

        log.warning(
            "could not push %d metric(s) of %s/%s to %s: %s", len(samples), pipeline, stage, redact(url), err
        )
        return False
    log.info("pushed %d metric(s) of %s/%s to the Pushgateway", len(samples), pipeline, stage)
    return True


# --- what each step pushes (no-ops unless MLOPS_PROMETHEUS_PUSHGATEWAY is set) -----------------


def _guarded(pipeline: str, stage: str, build: Any) -> bool:
    if gateway() is None:
        return False
    try:
        samples = build()
    except Exception as err:  # the registry or a value could not be read: log, never fail the step
        log.warning("could not collect the %s metrics of %s: %s", stage, pipeline, err)
        return False
    return push(pipeline, stage, samples)


def push_evaluation(pipeline: str, challenger: Mapping[str, Any]) -> bool:
    return _guarded(
        pipeline, "evaluation", lambda: from_metrics({f"holdout_{k}": v for k, v in challenger.items()})
    )


def push_drift(pipeline: str, result: Mapping[str, Any]) -> bool:
    keys = ("drift_share", "n_drifted", "drift_detected")
    values = {**result, "drift_detected": bool(result.get("drifted"))}
    return _guarded(pipeline, "monitoring", lambda: from_metrics({k: values.get(k) for k in keys}))


def push_performance(pipeline: str, day: Mapping[str, Any], floor: float | None) -> bool:
    return _guarded(pipeline, "performance", lambda: performance_samples(day, floor))


_GATE = {"mlops_gate_decisions_total"}
_DEPLOY = {"mlops_champion_version", "mlops_deployments_total", "mlops_rollbacks_total"}


def push_gate(pipeline: str, model_name: str, promote: bool) -> bool:
    def build() -> list[Sample]:
        counted = [s for s in registry_samples(model_name) if s.name in _GATE]
        return [Sample("mlops_gate_accepted", 1.0 if promote else 0.0), *counted]

    return _guarded(pipeline, "gate", build)


def push_deploy(pipeline: str, model_name: str, *, rollback_failed: bool) -> bool:
    def build() -> list[Sample]:
        counted = [s for s in registry_samples(model_name) if s.name in _DEPLOY]
        return [*counted, Sample("mlops_rollback_failed", 1.0 if rollback_failed else 0.0)]

    return _guarded(pipeline, "deploy", build)
