"""The Pushgateway of the compose stack takes only authenticated pushes, and the package's push
and Prometheus' scrape authenticate (issue 23, item 8). Real processes: Debian's
prometheus-pushgateway with the web config the stack writes, Debian's prometheus with the
stack's scrape config."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

import pytest

from mlops_core.monitor import prometheus
from tests import promstack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit

USER, PASSWORD = "mlops", "pw-Zq8sT3vLk2Xr9Wn4"
SAMPLES = [prometheus.Sample("mlops_drift_share", 0.75)]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("pushgateway-auth")
    with promstack.pushgateway(workdir, auth=(USER, PASSWORD)) as url:
        yield url, workdir / "pushgateway_password"


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (prometheus.USER_ENV, prometheus.PASSWORD_ENV, prometheus.PASSWORD_FILE_ENV):
        monkeypatch.delenv(name, raising=False)


def _request(url: str, data: bytes | None = None, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, method="PUT" if data is not None else "GET")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _pushed(url: str, pipeline: str) -> bool:
    request = urllib.request.Request(f"{url}/metrics")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as reply:
        return f'pipeline="{pipeline}"' in reply.read().decode()


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("someone", PASSWORD)])
def test_a_push_without_the_password_is_refused(gateway, auth):
    url, _ = gateway
    body = b"mlops_drift_share 1\n"
    assert _request(f"{url}/metrics/job/mlops/pipeline/forged/stage/monitoring", body, auth) == 401
    assert _request(f"{url}/metrics", auth=auth) == 401
    assert not _pushed(url, "forged")


def test_the_packages_push_authenticates_from_the_env(gateway, monkeypatch):
    url, _ = gateway
    monkeypatch.setenv(prometheus.USER_ENV, USER)
    monkeypatch.setenv(prometheus.PASSWORD_ENV, PASSWORD)
    assert prometheus.push("env_pipe", "monitoring", SAMPLES, url) is True
    assert _pushed(url, "env_pipe")


def test_the_packages_push_reads_the_password_file_of_the_stack(gateway, monkeypatch):
    url, secret = gateway
    monkeypatch.setenv(prometheus.USER_ENV, USER)
    monkeypatch.setenv(prometheus.PASSWORD_FILE_ENV, str(secret))
    assert prometheus.push("file_pipe", "monitoring", SAMPLES, url) is True
    assert _pushed(url, "file_pipe")


def test_the_packages_push_takes_userinfo_in_the_url(gateway):
    url, _ = gateway
    with_login = url.replace("http://", f"http://{USER}:{urllib.parse.quote(PASSWORD)}@")
    assert prometheus.push("url_pipe", "monitoring", SAMPLES, with_login) is True
    assert _pushed(url, "url_pipe")


def test_a_refused_push_is_logged_without_the_password_and_fails_no_step(gateway, caplog):
    url, _ = gateway
    wrong = url.replace("http://", f"http://{USER}:not-{PASSWORD}@")
    with caplog.at_level(logging.WARNING, logger=prometheus.__name__):
        assert prometheus.push("refused_pipe", "monitoring", SAMPLES, wrong) is False
        assert prometheus.push("refused_pipe", "monitoring", SAMPLES, url) is False  # no credentials
    assert "401" in caplog.text and PASSWORD not in caplog.text
    assert not _pushed(url, "refused_pipe")


def test_prometheus_with_the_stacks_config_scrapes_the_authenticated_gateway(gateway, tmp_path):
    url, secret = gateway
    with promstack.prometheus(tmp_path, url, pushgateway_password_file=secret) as prom:
        deadline = time.monotonic() + 60
        query = urllib.parse.urlencode({"query": 'up{job="pushgateway"}'})
        while True:
            with urllib.request.urlopen(f"{prom}/api/v1/query?{query}", timeout=10) as reply:
                result = json.loads(reply.read())["data"]["result"]
            if result and result[0]["value"][1] == "1":
                break
            assert time.monotonic() < deadline, f"the scrape never authenticated: {result}"
            time.sleep(0.5)
