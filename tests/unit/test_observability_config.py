"""The monitoring configuration of the stack: Prometheus, its rules, the statsd mapping, Grafana.

What is run for real, and what is only read:

- ``promtool`` (Debian's ``prometheus`` package; ``make observability`` installs it) checks
  prometheus.yml and rules.yml, runs the rule unit tests of rules_test.yml, and parses every PromQL
  expression of the Grafana dashboard and of the Grafana alert rules (as recording rules of a
  throw-away rules file: promtool 2.42 has no standalone parser). Without promtool these tests
  fail; they are not skipped.
- The statsd mapping: the installed Airflow's own stats module and metrics registry emit the
  names (through a StatsD client that records instead of sending), and a small re-implementation
  of statsd_exporter's documented matching maps them: glob rules in file order, then regex rules,
  first match wins, an unmatched name keeps its escaped name. The statsd_exporter binary itself
  is not on this machine.
- Grafana does not run here: its provisioning files and the dashboard are checked structurally.
- Every metric a panel, a rule or an alert queries is one the package pushes
  (``mlops_core.monitor.prometheus.METRICS``), one the Pushgateway or Prometheus adds, or one the statsd
  mapping makes from a metric Airflow emits.

The real Prometheus and Pushgateway run with prometheus.yml in the stack tier (tests/stack).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import yaml

from mlops_core.monitor.prometheus import ENV as PUSHGATEWAY_ENV
from mlops_core.monitor.prometheus import METRICS as PACKAGE_METRICS
from mlops_core.spec.catalog import METRICS as CATALOG

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "include" / "compose" / "prometheus"
GRAFANA_DIR = ROOT / "include" / "compose" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "mlops.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "mlops.yml"
GRAFANA_ALERTS = GRAFANA_DIR / "provisioning" / "alerting" / "mlops.yml"
STATSD_MAPPING = PROMETHEUS_DIR / "statsd_mapping.yml"
COMPOSE_FILE = ROOT / "docker-compose.yaml"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
DATASOURCE_UID = "prometheus"

# Series the Pushgateway adds to every pushed group, and Prometheus' own per-target series.
PUSHGATEWAY_METRICS = {"push_time_seconds", "push_failure_time_seconds"}
PROMETHEUS_METRICS = {"up"}
REQUIRED_ALERTS = {
    "MlopsModelDecay": "critical",
    "MlopsRollbackFailed": "critical",
    "MlopsDriftDetected": "warning",
    "MlopsMonitoringStale": "warning",
}
# What a Grafana template variable stands for when its PromQL is parsed here.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${pipeline:regex}": ".*",
    "${pipeline}": ".*",
    "$pipeline": ".*",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `make observability` installs it (Debian's prometheus package)"
        )
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    cmd = [promtool(), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def alert_rules() -> dict[str, dict[str, Any]]:
    rules = [rule for group in load_yaml(PROMETHEUS_DIR / "rules.yml")["groups"] for rule in group["rules"]]
    return {rule["alert"]: rule for rule in rules if "alert" in rule}


def grafana_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(GRAFANA_ALERTS)["groups"] for rule in group["rules"]]


def prometheus_query(rule: dict[str, Any]) -> dict[str, Any]:
    """The data entry of a Grafana rule that queries Prometheus (refId A)."""
    return next(d for d in rule["data"] if d["datasourceUid"] == DATASOURCE_UID)


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def promql_expressions() -> dict[str, str]:
    """Where -> PromQL: every dashboard target, the template variable, every Prometheus and Grafana rule."""
    exprs = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            exprs[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = target["expr"]
    for name, rule in alert_rules().items():
        exprs[f"rules.yml {name}"] = rule["expr"]
    for rule in grafana_rules():
        exprs[f"grafana alert {rule['uid']}"] = prometheus_query(rule)["model"]["expr"]
    return exprs


def normalized(expr: str) -> str:
    return " ".join(expr.split())


# ---------------------------------------------------------------------------------------------
# Prometheus: the config, the rules and their unit tests, by promtool.
# ---------------------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    proc = run_promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_prometheus_scrapes_the_pushgateway_with_honor_labels_and_the_statsd_exporter() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets == {"pushgateway": ["pushgateway:9091"], "airflow": ["statsd-exporter:9102"]}
    assert jobs["pushgateway"]["honor_labels"] is True, "the pushed job/pipeline/stage labels must win"
    assert not jobs["airflow"].get("honor_labels"), (
        "the statsd exporter's series have no job label of their own"
    )
    # The stack tier reuses this file by rewriting the `targets:` lines: one line per target list,
    # and no host named anywhere else.
    lines = (PROMETHEUS_DIR / "prometheus.yml").read_text().splitlines()
    target_lines = [line for line in lines if line.strip().startswith("- targets:")]
    assert [re.findall(r'"([^"]+)"', line) for line in target_lines] == list(targets.values())
    for line in lines:
        if line not in target_lines and not line.lstrip().startswith("#"):
            assert not re.search(r"pushgateway:|statsd-exporter:", line), line


def test_rules_pass_promtool_check() -> None:
    proc = run_promtool("check", "rules", "rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_rule_unit_tests_pass() -> None:
    """rules_test.yml: decay, a failed rollback, drift, staleness... fire; the healthy series do not."""
    proc = run_promtool("test", "rules", "rules_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_severity_annotations_and_a_firing_unit_test() -> None:
    rules = alert_rules()
    assert {name: rules[name]["labels"]["severity"] for name in REQUIRED_ALERTS} == REQUIRED_ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        if "pipeline" in rule["expr"]:
            assert "{{ $labels.pipeline }}" in rule["annotations"]["summary"], name
    cases = [
        case
        for test in load_yaml(PROMETHEUS_DIR / "rules_test.yml")["tests"]
        for case in test["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == set(rules), f"alerts without a test that makes them fire: {set(rules) - firing}"
    assert quiet == set(rules), f"alerts without a test where they stay quiet: {set(rules) - quiet}"


def test_the_decay_rule_knows_which_metrics_are_lower_is_better() -> None:
    """The interval is judged in each metric's direction: the rule's list is the catalog's."""
    expr = alert_rules()["MlopsModelDecay"]["expr"]
    lower_is_better = {name for name, metric in CATALOG.items() if not metric.higher_is_better}
    for operator in ("=~", "!~"):
        (listed,) = set(re.findall(rf'metric{operator}"([^"]+)"', expr))
        assert set(listed.split("|")) == lower_is_better, operator


# ---------------------------------------------------------------------------------------------
# PromQL: every expression parses and queries only metrics something produces.
# ---------------------------------------------------------------------------------------------

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, label names, keywords or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (pipeline, stage) (increase(mlops_deployments_total{job="mlops", x=~"a|b"}[$__range])) '
        "/ on (pipeline) group_left max(up) > bool 0.5 and time() - push_time_seconds offset 5m"
    )
    assert metric_names(expr) == {"mlops_deployments_total", "up", "push_time_seconds"}


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """promtool 2.42 parses PromQL only inside rule files: each expression becomes a recording rule."""
    exprs = promql_expressions()
    assert len(exprs) > 20
    records = [
        {"record": f"check:expr_{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs.values())
    ]
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": records}]}))
    proc = run_promtool("check", "rules", str(path), cwd=tmp_path)
    where = "\n".join(f"{r['record']}: {name}" for r, name in zip(records, exprs, strict=True))
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{where}"
    assert f"SUCCESS: {len(records)} rules found" in proc.stdout


@pytest.fixture(scope="module")
def produced_airflow_metrics() -> set[str]:
    return {name for name, _, _ in registry_outputs()}


def test_every_queried_metric_is_pushed_pushgateway_added_or_mapped(
    produced_airflow_metrics: set[str],
) -> None:
    allowed = set(PACKAGE_METRICS) | PUSHGATEWAY_METRICS | PROMETHEUS_METRICS | produced_airflow_metrics
    exprs = promql_expressions()
    variable = dashboard()["templating"]["list"][0]
    (variable_metric,) = re.findall(r"label_values\((\w+),", variable["definition"])
    exprs["variable pipeline"] = variable_metric
    unknown = {
        where: sorted(metric_names(e) - allowed) for where, e in exprs.items() if metric_names(e) - allowed
    }
    assert not unknown, f"metrics nothing produces: {unknown}"
    used = set().union(*(metric_names(e) for e in exprs.values()))
    assert set(PACKAGE_METRICS) <= used, f"pushed but shown nowhere: {set(PACKAGE_METRICS) - used}"


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard (structure only: Grafana does not run here).
# ---------------------------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_model() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39
    assert board["uid"] == "mlops" and board["title"]
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    boxes = []
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for i, (title, a) in enumerate(boxes):
        for other, b in boxes[i + 1 :]:
            overlap = (
                a["x"] < b["x"] + b["w"]
                and b["x"] < a["x"] + a["w"]
                and a["y"] < b["y"] + b["h"]
                and b["y"] < a["y"] + a["h"]
            )
            assert not overlap, f"panels {title!r} and {other!r} overlap"


def test_every_panel_queries_the_prometheus_data_source() -> None:
    panels = [panel for panel in dashboard_panels() if panel["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            assert target["expr"].strip(), f"{panel['title']} {target['refId']}: empty expr"


def test_dashboard_selects_pipelines_with_a_multi_value_variable() -> None:
    (variable,) = dashboard()["templating"]["list"]
    assert variable["name"] == "pipeline" and variable["type"] == "query"
    assert variable["datasource"]["uid"] == DATASOURCE_UID
    assert normalized(variable["definition"]) == "label_values(mlops_drift_share, pipeline)"
    assert normalized(variable["query"]["query"]) == "label_values(mlops_drift_share, pipeline)"
    assert variable["multi"] is True and variable["includeAll"] is True
    mlops_targets = [e for e in promql_expressions().values() if "mlops_" in e and "$pipeline" in e]
    assert all('pipeline=~"$pipeline"' in e for e in mlops_targets)
    assert len(mlops_targets) >= 15


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]
    by_panel = {p["title"]: p for p in dashboard_panels()}
    drift = by_panel["Drift share"]
    assert drift["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    realized = " ".join(t["expr"] for t in by_panel["Realized metric, its interval and floor"]["targets"])
    for name in ("mlops_realized_metric{", "_lower{", "_upper{", "_floor{"):
        assert name in realized
    failed = by_panel["Failed rollback"]
    assert failed["type"] == "stat"
    steps = failed["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 1} in steps
    for needle in ("increase(mlops_deployments_total", "increase(mlops_rollbacks_total", "airflow_dagrun_duration_seconds",
                   'airflow_ti_finish_total{state="failed"', "airflow_scheduler_heartbeat_total"):  # fmt: skip
        assert any(needle in e for e in exprs), needle


# ---------------------------------------------------------------------------------------------
# Grafana provisioning: data source, dashboard provider, alert rules.
# ---------------------------------------------------------------------------------------------

NO_DATA_STATES = {"NoData", "Alerting", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Error", "Alerting", "OK", "KeepLast"}
EXPRESSION_TYPES = {"reduce", "threshold", "math", "classic_conditions", "resample"}


def test_grafana_data_source_is_the_stack_prometheus() -> None:
    config = load_yaml(DATASOURCES)
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090" and source["access"] == "proxy"
    scrape = load_yaml(PROMETHEUS_DIR / "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_grafana_alert_rules_follow_the_provisioning_format() -> None:
    config = load_yaml(GRAFANA_ALERTS)
    assert config["apiVersion"] == 1
    panel_ids = {panel["id"] for panel in dashboard_panels()}
    titles = []
    for group in config["groups"]:
        assert group["orgId"] == 1 and group["name"] and group["folder"]
        assert re.fullmatch(r"\d+[smh]", group["interval"]), group["interval"]
        for rule in group["rules"]:
            titles.append(rule["title"])
            required = {
                "uid",
                "title",
                "condition",
                "data",
                "noDataState",
                "execErrState",
                "for",
                "labels",
                "annotations",
            }
            assert required <= set(rule), f"{rule.get('uid')}: missing {required - set(rule)}"
            assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", rule["uid"]), rule["uid"]
            assert rule["noDataState"] in NO_DATA_STATES and rule["execErrState"] in EXEC_ERR_STATES
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert "{{ $labels.pipeline }}" in rule["annotations"]["summary"]
            ref_ids = [d["refId"] for d in rule["data"]]
            assert len(ref_ids) == len(set(ref_ids)) and rule["condition"] in ref_ids
            for data in rule["data"]:
                assert data["model"]["refId"] == data["refId"]
                if data["datasourceUid"] == "__expr__":
                    model = data["model"]
                    assert model["type"] in EXPRESSION_TYPES, model
                    assert model["expression"] in ref_ids and model["expression"] != data["refId"]
                    if model["type"] == "threshold":
                        (condition,) = model["conditions"]
                        assert condition["evaluator"]["type"] in {"gt", "lt", "within_range", "outside_range"}
                else:
                    assert data["datasourceUid"] == DATASOURCE_UID
                    assert data["model"]["datasource"]["uid"] == DATASOURCE_UID
                    assert data["model"]["expr"].strip() and data["relativeTimeRange"]["from"] > 0
            condition = next(d for d in rule["data"] if d["refId"] == rule["condition"])
            assert condition["model"]["type"] == "threshold"
            assert rule["dashboardUid"] == dashboard()["uid"] and rule["panelId"] in panel_ids
    assert {"MlopsModelDecay", "MlopsRollbackFailed"} <= set(titles)


def test_grafana_alerts_query_what_the_prometheus_rules_judge() -> None:
    """Query A is the Prometheus rule's expression without its final `== 1`: one 0/1 per pipeline."""
    prometheus = alert_rules()
    for rule in grafana_rules():
        expected = normalized(prometheus[rule["title"]]["expr"])
        assert expected.endswith(" == 1")
        assert normalized(prometheus_query(rule)["model"]["expr"]) == expected.removesuffix(" == 1")


# ---------------------------------------------------------------------------------------------
# docker compose: the monitoring services mount these files, and the names line up.
# ---------------------------------------------------------------------------------------------


def compose_services() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE_FILE)["services"])


def bind_mounts(service: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
    """Container path -> (host path, read-only) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith("."):
            mounts[parts[1]] = (ROOT / parts[0], parts[2:] == ["ro"])
    return mounts


def flag(service: dict[str, Any], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(f"--{name}=")]
    return value


def mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind ``container_path``, through a file or a directory bind mount."""
    for target, (source, read_only) in bind_mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            assert read_only, f"{target} is mounted writable"
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"nothing mounted at {container_path}")


def test_compose_services_mount_the_monitoring_files() -> None:
    services = compose_services()
    prometheus = services["prometheus"]
    assert mounted_file(prometheus, flag(prometheus, "config.file")) == PROMETHEUS_DIR / "prometheus.yml"
    assert mounted_file(prometheus, "/etc/prometheus/rules.yml").is_file()
    exporter = services["statsd-exporter"]
    assert mounted_file(exporter, flag(exporter, "statsd.mapping-config")) == STATSD_MAPPING
    grafana = services["grafana"]
    provisioning = mounted_file(grafana, "/etc/grafana/provisioning")
    assert provisioning == GRAFANA_DIR / "provisioning"
    for path in (DATASOURCES, DASHBOARD_PROVIDER, GRAFANA_ALERTS):
        assert path.is_relative_to(provisioning) and path.is_file()
    (provider,) = load_yaml(DASHBOARD_PROVIDER)["providers"]
    assert provider["type"] == "file"
    assert mounted_file(grafana, provider["options"]["path"]) == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted_file(grafana, home) == DASHBOARD
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"


def test_compose_host_names_and_ports_line_up() -> None:
    """Airflow sends to the exporter's UDP port, the tasks push to the Pushgateway, Prometheus scrapes both."""
    services = compose_services()
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    for job in config["scrape_configs"]:
        for target in (t for sc in job["static_configs"] for t in sc["targets"]):
            host, port = target.split(":")
            assert host in services, f"{job['job_name']}: no compose service {host}"
            assert host in services["prometheus"]["depends_on"], f"prometheus starts before {host}"
    exporter = services["statsd-exporter"]
    assert flag(exporter, "web.listen-address") == ":9102"
    airflow = services["airflow-scheduler"]["environment"]
    # The scheduler's environment merges the shared anchor; read the anchor's values from there.
    env = {k: str(v) for k, v in airflow.items()}
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
    assert env["AIRFLOW__METRICS__STATSD_HOST"] in services
    assert flag(exporter, "statsd.listen-udp") == f":{env['AIRFLOW__METRICS__STATSD_PORT']}"
    assert env["AIRFLOW__METRICS__STATSD_PREFIX"] == "airflow", "statsd_mapping.yml matches airflow.*"
    worker = {k: str(v) for k, v in services["airflow-worker"]["environment"].items()}
    pushgateway = urlsplit(worker[PUSHGATEWAY_ENV])
    assert pushgateway.hostname in services and pushgateway.port == 9091
    assert urlsplit(load_yaml(DATASOURCES)["datasources"][0]["url"]).hostname in services


# ---------------------------------------------------------------------------------------------
# The statsd mapping, fed the metric names the installed Airflow emits.
# ---------------------------------------------------------------------------------------------

# statsd_exporter v0.28 reads the file with yaml.UnmarshalStrict: an unknown key is an error.
MAPPING_KEYS = {
    "match", "name", "labels", "honor_labels", "observer_type", "timer_type", "buckets", "quantiles",
    "match_type", "help", "action", "match_metric_type", "ttl", "summary_options", "histogram_options", "scale",
}  # fmt: skip
DEFAULTS_KEYS = {
    "observer_type", "timer_type", "buckets", "quantiles", "match_type", "glob_disable_ordering", "ttl",
    "summary_options", "histogram_options",
}  # fmt: skip
# pkg/mapper/mapper.go: the glob line, the metric name (with $n templates) and label names.
GLOB_LINE = re.compile(r"^(\*|[a-zA-Z_][a-zA-Z0-9_\-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_\-]*)*$")
TEMPLATE = r"(\$\{?\d+\}?)"
METRIC_NAME = re.compile(rf"^([a-zA-Z_]|{TEMPLATE})([a-zA-Z0-9_]|{TEMPLATE})*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
STATSD_TYPES = {"counter": "c", "gauge": "g", "timer": "ms"}
MATCH_METRIC_TYPES = {"counter": "c", "gauge": "g", "observer": "ms", "timer": "ms"}


def mapping_config() -> dict[str, Any]:
    return dict(load_yaml(STATSD_MAPPING))


@dataclass(frozen=True)
class Mapped:
    name: str
    labels: tuple[tuple[str, str], ...]
    rule: int | None  # index of the mapping that matched; None: the exporter's default name


def _fill(template: str, captures: list[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: captures[int(m.group(1)) - 1], template)


def first_rule(name: str, kind: str, config: dict[str, Any]) -> tuple[int, list[str]] | None:
    """The index of the mapping statsd_exporter applies to a StatsD name and type, and its captures.

    Glob rules first, in file order (``glob_disable_ordering: false``), each ``*`` one whole
    dot-separated part; then the regex rules in order (the exporter runs them after every glob).
    """
    default_type = config.get("defaults", {}).get("match_type", "glob")
    rules = [
        (i, rule) for i, rule in enumerate(config["mappings"])
        if not rule.get("match_metric_type") or MATCH_METRIC_TYPES[rule["match_metric_type"]] == kind
    ]  # fmt: skip
    parts = name.split(".")
    for index, rule in rules:
        pattern = rule["match"].split(".")
        if rule.get("match_type", default_type) == "glob" and len(pattern) == len(parts):
            if all(p in ("*", n) for p, n in zip(pattern, parts, strict=True)):
                return index, [n for p, n in zip(pattern, parts, strict=True) if p == "*"]
    for index, rule in rules:
        if rule.get("match_type", default_type) == "regex" and (found := re.search(rule["match"], name)):
            return index, list(found.groups())
    return None


def statsd_map(name: str, kind: str, config: dict[str, Any] | None = None) -> Mapped | None:
    """What statsd_exporter makes of one StatsD line's name and type (None: dropped).

    An unmatched name keeps its own, every character but [a-zA-Z0-9_] turned into "_".
    """
    config = config or mapping_config()
    found = first_rule(name, kind, config)
    if found is None:
        return Mapped(re.sub(r"[^a-zA-Z0-9_]", "_", name), (), None)
    index, captures = found
    rule = config["mappings"][index]
    if rule.get("action") == "drop":
        return None
    labels = tuple(sorted((k, _fill(str(v), captures)) for k, v in (rule.get("labels") or {}).items()))
    return Mapped(_fill(rule["name"], captures), labels, index)


def prometheus_names(mapped: Mapped, kind: str) -> set[str]:
    """The series names one mapped StatsD metric shows up as (histograms have three)."""
    if kind == "ms":
        return {f"{mapped.name}_bucket", f"{mapped.name}_sum", f"{mapped.name}_count"}
    return {mapped.name}


def airflow_33_only() -> None:
    """The statsd mapping follows the metrics of the Airflow the lock pins (3.3: names, and the stats
    modules' internals that the recording fixture swaps); next to an older Airflow (`make
    test-lower-bounds`, 3.2) those tests are skipped, not failed."""
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("apache-airflow")) < Version("3.3"):
        pytest.skip("the statsd mapping is checked against Airflow 3.3's metrics registry")


def airflow_registry() -> list[dict[str, Any]]:
    airflow_33_only()
    from airflow._shared.observability.metrics.metrics_registry import YAML_REGISTRY_PATH, read_metrics_yaml

    return list(read_metrics_yaml(str(YAML_REGISTRY_PATH)))


def _sample(template: str) -> str:
    """A registry name with each ``{variable}`` filled the way Airflow does (no dots inside)."""
    return re.sub(r"\{(\w+)\}", lambda m: f"some_{m.group(1)}", template)


def registry_names() -> Iterator[tuple[str, str, str | None]]:
    """(StatsD name, type, the legacy name of the same metric) of every metric Airflow registers."""
    for metric in airflow_registry():
        kind = STATSD_TYPES[metric["type"]]
        if "{job_name}" in metric["name"]:  # <job>_start/_end: no legacy form, default names
            continue
        legacy = metric.get("legacy_name", "-")
        modern = "airflow." + _sample(metric["name"])
        if legacy != "-":
            yield "airflow." + _sample(legacy), kind, None
        yield modern, kind, None if legacy == "-" else "airflow." + _sample(legacy)


def registry_outputs() -> Iterator[tuple[str, Mapped, str]]:
    """Every Prometheus series name the mapping makes of Airflow's registered metrics."""
    config = mapping_config()
    for name, kind, _ in registry_names():
        mapped = statsd_map(name, kind, config)
        if mapped is not None:
            for series in prometheus_names(mapped, kind):
                yield series, mapped, name


def test_mapping_file_is_what_statsd_exporter_accepts() -> None:
    config = mapping_config()
    assert set(config) <= {"defaults", "mappings"}
    assert set(config["defaults"]) <= DEFAULTS_KEYS
    assert config["defaults"]["observer_type"] == "histogram"
    buckets = config["defaults"]["histogram_options"]["buckets"]
    assert buckets == sorted(buckets) and set(config["defaults"]["histogram_options"]) == {"buckets"}
    for rule in config["mappings"]:
        assert set(rule) <= MAPPING_KEYS, f"{rule['match']}: unknown keys {set(rule) - MAPPING_KEYS}"
        assert rule.get("name") and METRIC_NAME.match(rule["name"]), rule
        assert rule.get("action", "map") in {"map", "drop"}
        assert rule.get("match_metric_type", "counter") in MATCH_METRIC_TYPES
        if rule.get("match_type", config["defaults"].get("match_type", "glob")) == "glob":
            assert GLOB_LINE.match(rule["match"]), f"invalid glob: {rule['match']}"
            captures = rule["match"].split(".").count("*")
        else:
            captures = re.compile(rule["match"]).groups
        for label in rule.get("labels") or {}:
            assert LABEL_NAME.match(label), label
        if rule.get("action") != "drop":
            assert rule.get("help"), f"{rule['match']}: no help text"
            used = {int(n) for text in [rule["name"], *(rule.get("labels") or {}).values()]
                    for n in re.findall(r"\$\{?(\d+)\}?", str(text))}  # fmt: skip
            assert used == set(range(1, captures + 1)), f"{rule['match']}: captures {captures}, uses {used}"


@dataclass(frozen=True)
class Emitted:
    """One metric call of Airflow's, as its source makes it, and the series it must become."""

    module: str  # the stats module that call site uses: core (airflow._shared) or sdk (airflow.sdk._shared)
    emit: Callable[[Any], None]
    name: str
    labels: dict[str, str]


def _dagrun_duration(state: str) -> Callable[[Any], None]:
    """DagRun._emit_duration_stats_for_finished_state itself, on a finished run."""

    def emit(_stats: Any) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.state import DagRunState

        now = dt.datetime.now(dt.UTC)
        run = SimpleNamespace(
            state=DagRunState(state), start_date=now - dt.timedelta(minutes=3), end_date=now,
            dag_id="churn_training", stats_tags={"dag_id": "churn_training", "run_type": "scheduled"},
            log=logging.getLogger("dagrun"),
        )  # fmt: skip
        DagRun._emit_duration_stats_for_finished_state(run)

    return emit


TI = {"dag_id": "churn_training", "task_id": "evaluate.gate"}  # a task in a task group: a dotted id
TI_LABELS = {"dag_id": "churn_training", "task_id": "evaluate__gate"}  # Airflow turns '.' into '__'
EMITTED = {
    "dag run success": Emitted("core", _dagrun_duration("success"), "airflow_dagrun_duration_seconds",
                               {"dag_id": "churn_training", "status": "success"}),
    "dag run failed": Emitted("core", _dagrun_duration("failed"), "airflow_dagrun_duration_seconds",
                              {"dag_id": "churn_training", "status": "failed"}),
    # task_runner.run()
    "task failed": Emitted("sdk", lambda s: s.incr("ti.finish", tags={**TI, "state": "failed"}),
                           "airflow_ti_finish_total", {**TI_LABELS, "state": "failed"}),
    "task started": Emitted("sdk", lambda s: s.incr("ti.start", tags=TI), "airflow_ti_start_total", TI_LABELS),
    # task_runner.finalize(): milliseconds
    "task duration": Emitted("sdk", lambda s: s.timing("task.duration", 1234.5, tags=TI),
                             "airflow_task_duration_seconds", TI_LABELS),
    "task success": Emitted("sdk", lambda s: s.incr("ti_successes", tags=TI), "airflow_ti_successes_total", {}),
    # TaskInstance.fetch_handle_failure_context()
    "task failure": Emitted("core", lambda s: s.incr("ti_failures", tags=TI), "airflow_ti_failures_total", {}),
    "operator failure": Emitted("core", lambda s: s.incr("operator_failures", tags={**TI, "operator_name": "PythonOperator"}),
                                "airflow_operator_failures_total", {"operator": "PythonOperator"}),
    # SchedulerJobRunner
    "scheduler heartbeat": Emitted("core", lambda s: s.incr("scheduler_heartbeat", 1, 1),
                                   "airflow_scheduler_heartbeat_total", {}),
    "pool slots": Emitted("core", lambda s: s.gauge("pool.open_slots", 128, tags={"pool_name": "default_pool"}),
                          "airflow_pool_open_slots", {"pool": "default_pool"}),
    "running tasks gauge": Emitted("core", lambda s: s.gauge("ti.running", 2.0, tags={"queue": "default", **TI}),
                                   "airflow_ti_running", {"queue": "default", **TI_LABELS}),
    # BaseExecutor._emit_metrics()
    "executor running": Emitted("core", lambda s: s.gauge("executor.running_tasks", 3, tags={
        "status": "running", "executor_class_name": "CeleryExecutor"}),
        "airflow_executor_running_tasks", {"executor": "CeleryExecutor"}),
    # DagFileProcessorManager
    "import errors": Emitted("core", lambda s: s.gauge("dag_processing.import_errors", 0),
                             "airflow_dag_processing_import_errors", {}),
    "dag processor heartbeat": Emitted("core", lambda s: s.incr("dag_processor_heartbeat", 1, 1),
                                       "airflow_dag_processor_heartbeat_total", {}),
    "triggerer heartbeat": Emitted("core", lambda s: s.incr("triggerer_heartbeat", 1, 1, tags={}),
                                   "airflow_triggerer_heartbeat_total", {}),
}  # fmt: skip


class RecordingStatsClient:
    """Stands in for statsd.StatsClient (the same constructor and calls): records what it would send."""

    sent: list[tuple[str, str]] = []

    def __init__(
        self, host: str | None = None, port: int | None = None, prefix: str | None = None, ipv6: bool = False
    ):
        self.prefix = prefix

    def _send(self, stat: str, kind: str) -> None:
        self.sent.append((f"{self.prefix}.{stat}" if self.prefix else stat, kind))

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self._send(stat, "c")

    def decr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self._send(stat, "c")

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self._send(stat, "g")

    def timing(self, stat: str, delta: Any, rate: float = 1) -> None:
        self._send(stat, "ms")


@pytest.fixture
def airflow_stats(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Airflow's stats module (core or task SDK copy) sending to the recording client, as compose sets it."""
    airflow_33_only()
    import airflow._shared.observability.metrics.stats as core_stats
    import airflow._shared.observability.metrics.statsd_logger as core_logger
    import airflow.sdk._shared.observability.metrics.stats as sdk_stats
    import airflow.sdk._shared.observability.metrics.statsd_logger as sdk_logger

    env = compose_services()["airflow-scheduler"]["environment"]
    modules = {"core": (core_stats, core_logger), "sdk": (sdk_stats, sdk_logger)}
    for stats, logger in modules.values():
        for attr in ("_factory", "_backend", "_export_legacy_names"):
            monkeypatch.setattr(stats, attr, getattr(stats, attr))

        def factory(logger: Any = logger) -> Any:
            return logger.get_statsd_logger(
                stats_class=RecordingStatsClient,
                host=env["AIRFLOW__METRICS__STATSD_HOST"],
                port=int(env["AIRFLOW__METRICS__STATSD_PORT"]),
                prefix=env["AIRFLOW__METRICS__STATSD_PREFIX"],
            )

        # [metrics] legacy_names_on defaults to True; the mapping relies on the legacy names.
        stats.initialize(factory=factory, export_legacy_names=True)
    RecordingStatsClient.sent = []
    return lambda module: modules[module][0]


@pytest.mark.parametrize("case", list(EMITTED))
def test_airflow_metrics_become_labelled_series(airflow_stats: Callable[[str], Any], case: str) -> None:
    """What Airflow sends for one call (legacy and new name) maps to exactly the expected series."""
    emitted = EMITTED[case]
    emitted.emit(airflow_stats(emitted.module))
    sent = RecordingStatsClient.sent
    assert sent, "Airflow sent nothing"
    kept = [(mapped, kind) for name, kind in sent if (mapped := statsd_map(name, kind)) is not None]
    expected = tuple(sorted(emitted.labels.items()))
    assert [(m.name, m.labels) for m, _ in kept] == [(emitted.name, expected)], sent


def test_new_names_of_mapped_legacy_metrics_are_dropped() -> None:
    """Without its tags, a new name would add one series mixing every DAG, task, pool or executor."""
    config = mapping_config()
    for name, kind, legacy in registry_names():
        if legacy is None:
            continue
        legacy_mapped = statsd_map(legacy, kind, config)
        if legacy_mapped is not None and legacy_mapped.rule is not None and legacy_mapped.labels:
            assert statsd_map(name, kind, config) is None, (
                f"{name} is kept beside {legacy} -> {legacy_mapped.name}"
            )


def test_every_mapping_rule_maps_a_metric_airflow_emits() -> None:
    """No dead rule: each is the first match of some name in the installed Airflow's registry."""
    config = mapping_config()
    used = {found[0] for name, kind, _ in registry_names() if (found := first_rule(name, kind, config))}
    unused = [rule["match"] for i, rule in enumerate(config["mappings"]) if i not in used]
    assert not unused, f"rules no Airflow metric reaches: {unused}"


def test_mapped_names_are_unique_per_label_set(produced_airflow_metrics: set[str]) -> None:
    """A series name means one thing: every metric mapped to it has the same label names."""
    label_names: dict[str, set[tuple[str, ...]]] = {}
    for series, mapped, _ in registry_outputs():
        label_names.setdefault(series, set()).add(tuple(k for k, _ in mapped.labels))
    mixed = {name: sets for name, sets in label_names.items() if len(sets) > 1}
    assert not mixed, mixed
    assert {"airflow_ti_finish_total", "airflow_dagrun_duration_seconds_sum"} <= produced_airflow_metrics


# ---------------------------------------------------------------------------------------------
# docs/monitoring.md lists what the package pushes.
# ---------------------------------------------------------------------------------------------


def test_monitoring_doc_lists_every_pushed_metric() -> None:
    table = re.findall(r"^\| `(mlops_\w+)`", MONITORING_DOC.read_text(), flags=re.M)
    assert sorted(table) == sorted(PACKAGE_METRICS)
