"""The lake's commit protocol under real faults, on a local disk: ``kill -9`` of a writer at each
commit step, two writer processes racing on one partition, a reader looping through rewrites.

Every check reads the partition as a consumer would and verifies the sha256 of every file of the
version against its manifest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from mlops_core.data import collector, filesystems, storage

if TYPE_CHECKING:
    from pathlib import Path

DS = "2026-01-31"

# A writer process: writes ``n`` rows (two frames and a file) ``times`` times; when the commit
# reaches ``pause_at`` (tests/commit_steps.py) it says so and sleeps, so the test can kill -9 it
# exactly there.
WRITER = r"""
import sys, time
import pandas as pd
from mlops_core.data import storage
from tests import commit_steps

root, n, times, pause_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def paused():
    print("PAUSED", flush=True)
    time.sleep(120)

if pause_at != "-":
    commit_steps.pause_at(pause_at, paused)
# paced (a 7th argument: a file where a reader counts its reads): each rewrite waits until the
# reader has read a few more times, so the reads interleave with the rewrites however loaded the
# machine is, instead of racing a fixed number of rewrites
paced = sys.argv[6] if len(sys.argv) > 6 else None

best = 0

def reads():  # the highest count seen: a read of the file mid-rewrite may find it empty
    global best
    try:
        best = max(best, int(open(paced).read() or 0))
    except (OSError, ValueError):
        pass
    return best

for i in range(times):
    if paced:
        target, deadline = reads() + 3, time.monotonic() + 30
        while reads() < target and time.monotonic() < deadline:
            time.sleep(0.002)
    rows = n + i
    frame = pd.DataFrame({"a": range(rows), "b": [f"w{n}-{i}"] * rows})
    storage.write_partition({"data": frame, "copy": frame}, root, "p", "raw", sys.argv[5], files={"n.txt": str(rows).encode()})
print("DONE", flush=True)
"""


def _writer(
    root: str, n: int, times: int = 1, pause_at: str = "-", paced: Path | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["include", os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            root,
            str(n),
            str(times),
            pause_at,
            DS,
            *([str(paced)] if paced else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _whole(uri: str, version: int | None = None) -> tuple[int, int]:
    """(version, rows) of a version read as a consumer would; every file checked against its manifest."""
    m = storage.read_manifest(uri, version=version)
    fs, path = filesystems.filesystem(uri)
    for entry in m.files:
        storage._read_entry(fs, path, uri, entry, verify=True)
    data, copy = (
        storage.read_frame(uri, version=m.version),
        storage.read_frame(uri, "copy", version=m.version),
    )
    assert len(data) == len(copy) == m.rows and set(data["b"]) == {f"{data['b'].iloc[0]}"}
    if version is None:  # a file by its name resolves through the newest manifest
        assert storage.read_file(f"{uri}/n.txt")
    return m.version, m.rows


def _first_version(tmp_path: Path) -> str:
    frame = pd.DataFrame({"a": range(10), "b": ["first"] * 10})
    m = storage.write_partition(
        {"data": frame, "copy": frame}, tmp_path.as_uri(), "p", "raw", DS, files={"n.txt": b"10"}
    )
    return m.uri


@pytest.mark.parametrize(
    ("step", "visible"),
    [("data_file", (1, 10)), ("data_written", (1, 10)), ("manifest_staged", (1, 10)), ("published", (2, 50))],
)
def test_kill_9_at_each_commit_step_leaves_a_whole_version(tmp_path, step, visible):
    uri = _first_version(tmp_path)
    proc = _writer(tmp_path.as_uri(), 50, pause_at=step)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "PAUSED"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert _whole(uri) == visible  # the previous version (or the published new one), whole
    # nothing the killed writer left blocks the next writer ...
    ok = _writer(tmp_path.as_uri(), 7)
    assert ok.communicate(timeout=60)[0].strip() == "DONE"
    assert _whole(uri) == (visible[0] + 1, 7)
    # ... and its leftovers are collected once the retention has passed, the current version intact
    later = datetime.now(UTC) + timedelta(days=8)
    report = collector.collect_garbage(
        tmp_path.as_uri(), "p", keep_versions=1, retention=timedelta(days=7), now=later
    )
    assert report.removed > 0 and _whole(uri) == (visible[0] + 1, 7)
    left = {p.name for p in (tmp_path / "p" / "raw" / f"ds={DS}").iterdir()}
    assert len(left) == 4  # _manifests/ and the current version's three files


def test_racing_writer_processes_publish_whole_versions(tmp_path):
    uri = _first_version(tmp_path)
    procs = [_writer(tmp_path.as_uri(), n, times=6) for n in (100, 200)]
    for proc in procs:
        assert proc.communicate(timeout=60)[0].strip() == "DONE"
    versions = storage._versions(*filesystems.filesystem(uri))
    assert versions == list(range(1, 14))  # 1 + 2 x 6, no version lost, none overwritten
    rows = sorted(_whole(uri, v)[1] for v in versions[1:])
    assert rows == sorted([n + i for n in (100, 200) for i in range(6)])
    newest = _whole(uri)
    assert newest[0] == 13


def test_reader_never_sees_an_error_or_a_mismatch_during_rewrites(tmp_path):
    uri = _first_version(tmp_path)
    # 90 rewrites, each after at least 3 more reads (the writer paces itself on the reader's
    # count): 270+ reads interleaved with the rewrites, on a fast or a loaded machine
    counter = tmp_path / "reads"
    writer = _writer(tmp_path.as_uri(), 30, times=90, paced=counter)
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            try:
                seen.append(_whole(uri))
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
            counter.write_text(str(len(seen) + len(errors)))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        out = writer.communicate(timeout=180)[0]
    finally:
        stop.set()
        reader.join(30)
    assert out.strip() == "DONE"
    assert errors == [] and len(seen) >= 200, (errors[:3], len(seen))  # hundreds of reads, no error
    assert seen == sorted(seen)  # versions only move forward for a reader
    # no mismatch: every version read is the one its writer wrote (version 1: 10 rows, then 30 + i)
    assert all(rows == (10 if v == 1 else 28 + v) for v, rows in seen), sorted(set(seen))
    assert len({v for v, _ in seen}) > 5  # the reader really did run through rewrites
    assert _whole(uri) == (91, 119)
