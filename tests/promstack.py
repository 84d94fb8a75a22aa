"""Real Prometheus and Pushgateway processes for the tests (Debian's binaries: `make observability`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from typing import TYPE_CHECKING

import yaml

from tests.helpers import REPO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PUSHGATEWAY = "prometheus-pushgateway"
PROMETHEUS = "prometheus"
CONFIG = REPO / "include" / "compose" / "prometheus"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; `make observability` installs Debian's package")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def pushgateway(workdir: Path) -> Iterator[str]:
    """A Pushgateway on a free loopback port; yields its base URL."""
    port = free_port()
    log = (workdir / "pushgateway.log").open("wb")
    proc = subprocess.Popen(
        [binary(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextmanager
def prometheus(workdir: Path, pushgateway_url: str) -> Iterator[str]:
    """Prometheus with the compose stack's config and rules, its pushgateway target rewritten to
    ``pushgateway_url`` (the statsd-exporter job is dropped: no exporter binary here), 1 s scrapes."""
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    config["global"] = {**config.get("global", {}), "scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = []
    for job in config["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        if any("pushgateway" in t for t in targets):
            job = {**job, "static_configs": [{"targets": [pushgateway_url.removeprefix("http://")]}]}
            job["scrape_interval"] = "1s"
            jobs.append(job)
    config["scrape_configs"] = jobs
    config["rule_files"] = [str(CONFIG / f) for f in config.get("rule_files", [])]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary(PROMETHEUS),
            f"--config.file={path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
