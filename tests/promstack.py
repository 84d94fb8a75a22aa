"""Real Prometheus, Pushgateway and Alertmanager processes for the tests (Debian's binaries:
`make observability`), and a loopback webhook receiver for Alertmanager's notifications."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import yaml

from tests.helpers import REPO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PUSHGATEWAY = "prometheus-pushgateway"
PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
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


def wait_http(
    url: str,
    timeout: float = 60.0,
    proc: subprocess.Popen[bytes] | None = None,
    auth: tuple[str, str] | None = None,
) -> None:
    """Wait until ``url`` answers 200, from ``proc`` itself: a server that exited (its port was
    taken after :func:`free_port` chose it) is an error, not a stranger's server answering."""
    import base64

    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def _serve(
    workdir: Path, name: str, args: list[str], port: int, auth: tuple[str, str] | None = None
) -> Iterator[str]:
    """Run ``args`` (a server on loopback ``port``), wait until it is ready, stop it afterwards."""
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", proc=proc, auth=auth)
        time.sleep(0.5)
        if proc.poll() is not None:  # bound nothing: the answer came from another process
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; see {workdir}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextmanager
def pushgateway(workdir: Path, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """A Pushgateway on a free loopback port; yields its base URL.

    :param auth: ``(user, password)``: basic auth as the compose stack runs it, its web config
        written by the stack's own ``include/compose/pushgateway_web.py``.
    """
    port = free_port()
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every run
    # would start with the groups of the runs before it
    args = [binary(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    if auth is not None:
        secret, web = workdir / "pushgateway_password", workdir / "pushgateway-web.yml"
        secret.write_text(auth[1])
        script = REPO / "include" / "compose" / "pushgateway_web.py"
        subprocess.run([sys.executable, str(script), str(secret), str(web), auth[0]], check=True)
        args.append(f"--web.config.file={web}")
    with _serve(workdir, "pushgateway", args, port, auth) as url:
        yield url


@contextmanager
def prometheus(
    workdir: Path,
    pushgateway_url: str,
    pushgateway_password_file: Path | None = None,
    alertmanager_url: str | None = None,
    rule_files: list[Path] | None = None,
) -> Iterator[str]:
    """Prometheus with the compose stack's config and rules, its pushgateway target rewritten to
    ``pushgateway_url`` (the statsd-exporter job is dropped: no exporter binary here), 1 s scrapes.

    The stack's scrape authenticates with the ``pushgateway_password`` secret: its file is
    ``pushgateway_password_file`` here (None: a gateway without auth, the basic_auth is dropped).

    :param alertmanager_url: send firing and resolved alerts to this Alertmanager (the stack has
        none; without it Prometheus only evaluates the rules).
    :param rule_files: rule files instead of the stack's own (``rule_files`` of prometheus.yml).
    """
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    config["global"] = {**config.get("global", {}), "scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = []
    for job in config["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        if any("pushgateway" in t for t in targets):
            job = {**job, "static_configs": [{"targets": [pushgateway_url.removeprefix("http://")]}]}
            job["scrape_interval"] = "1s"
            if pushgateway_password_file is None:
                job.pop("basic_auth", None)
            elif "basic_auth" in job:
                job["basic_auth"] = {**job["basic_auth"], "password_file": str(pushgateway_password_file)}
            jobs.append(job)
    config["scrape_configs"] = jobs
    config["rule_files"] = (
        [str(CONFIG / f) for f in config.get("rule_files", [])]
        if rule_files is None
        else [str(f) for f in rule_files]
    )
    if alertmanager_url is not None:
        target = alertmanager_url.removeprefix("http://")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    args = [
        binary(PROMETHEUS),
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _serve(workdir, "prometheus", args, port) as url:
        yield url


@contextmanager
def alertmanager(workdir: Path, webhook_url: str, group_wait: str = "100ms") -> Iterator[str]:
    """Alertmanager on a free loopback port (clustering off: it would bind 0.0.0.0:9094) with one
    route: every alert, grouped by ``alertname`` and ``pipeline``, to a webhook at ``webhook_url``,
    resolved ones included. ``group_wait`` is also the group interval: short, for a test."""
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "pipeline"],
            "group_wait": group_wait,
            "group_interval": group_wait,
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    args = [
        binary(ALERTMANAGER),
        f"--config.file={path}",
        f"--storage.path={workdir / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _serve(workdir, "alertmanager", args, port) as url:
        yield url


class WebhookReceiver:
    """An HTTP server on loopback that keeps every JSON body POSTed to it: Alertmanager's webhook
    notifications (``{"status", "alerts": [{"status", "labels", "annotations", ...}], ...}``)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._bodies, self._lock = bodies, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far, in order."""
        with self._lock:
            return [alert for body in self._bodies for alert in body["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StatsdReceiver:
    """A UDP socket on loopback that keeps every StatsD line Airflow sends (``name:value|type``):
    what prom/statsd-exporter would receive in the compose stack (no exporter binary here)."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except OSError:
                return
            with self._lock:
                self.lines.extend(line for line in data.decode(errors="replace").splitlines() if line)

    def seen(self) -> dict[str, str]:
        """StatsD name -> type (c, g, ms) of every line received so far."""
        with self._lock:
            lines = list(self.lines)
        out = {}
        for line in lines:
            name, _, rest = line.partition(":")
            out[name] = rest.split("|")[1] if "|" in rest else ""
        return out

    def close(self) -> None:
        self.sock.close()
