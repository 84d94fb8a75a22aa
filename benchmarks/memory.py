"""Peak memory of reading one day from a large source through ``sources.read_source``.

Builds a source of 100 days in a temporary folder (CSV and parquet; about 1 GB of CSV, or about
20 MB with ``--quick``), then, in a fresh process per case, reads one day in ``column`` mode and
prints the child's peak RSS (``VmHWM``, the
per-process ``ru_maxrss``) next to the day's in-memory size
(``DataFrame.memory_usage(deep=True)``). The target: peak over the child's baseline (after its
imports) at most 3x the day's size. Exits non-zero if a read returns the wrong number of rows.

    .venv/bin/python benchmarks/memory.py --quick
    .venv/bin/python benchmarks/memory.py            # ~1 GB; takes a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAYS = 100
FIRST = date(2026, 1, 1)
PICK = FIRST + timedelta(days=57)
TARGET_RATIO = 3.0

CHILD = r"""
import json, resource, sys
import pandas, pyarrow, pyarrow.compute, pyarrow.csv, pyarrow.dataset, pyarrow.parquet
from mlops_core.data import sources
from mlops_core.spec import SourceSpec

def rss():
    # VmHWM: this process's own peak. ru_maxrss would do, but Linux carries it over exec from the
    # parent (the benchmark, big after building the source), so it is used only without /proc.
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

base = rss()
src = SourceSpec(uri=sys.argv[1], format=sys.argv[2], partition={"mode": "column", "column": "event_time"})
frame = sources.read_source(src, sys.argv[3])
print(json.dumps({"baseline": base, "peak": rss(), "rows": len(frame),
                  "day_bytes": int(frame.memory_usage(deep=True).sum())}))
"""


def build(folder: Path, rows_per_day: int) -> dict[str, Path]:
    """One CSV and one parquet file of ``DAYS`` days, written a day at a time (bounded memory)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv, parquet = folder / "events.csv", folder / "events.parquet"
    rng = np.random.default_rng(7)
    writer = None
    for i in range(DAYS):
        day = pd.Timestamp(FIRST + timedelta(days=i))
        step = pd.to_timedelta(np.sort(rng.integers(0, 86_400, rows_per_day)), unit="s")
        frame = pd.DataFrame(
            {
                "event_time": day + step,
                "user": rng.integers(0, 1_000_000, rows_per_day),
                "amount": rng.normal(50, 20, rows_per_day).round(2),
                "score": rng.random(rows_per_day),
                "country": rng.choice(["DE", "FR", "NL", "US", "JP", "BR"], rows_per_day),
                "note": rng.choice(["ok", "late delivery", "refund requested", "gift"], rows_per_day),
            }
        )
        frame.to_csv(csv, mode="a", header=i == 0, index=False)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(parquet, table.schema)
        writer.write_table(table, row_group_size=max(rows_per_day // 4, 1))
    assert writer is not None
    writer.close()
    return {"csv": csv, "parquet": parquet}


def measure(path: Path, fmt: str) -> dict[str, int]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path.as_uri(), fmt, PICK.isoformat()],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~20 MB source, seconds; checks correctness")
    parser.add_argument("--rows-per-day", type=int, help="override the source size")
    args = parser.parse_args(argv)
    rows_per_day = args.rows_per_day or (3_500 if args.quick else 160_000)
    mib = 2**20
    with tempfile.TemporaryDirectory(prefix="mlops-memory-") as tmp:
        started = time.monotonic()
        files = build(Path(tmp), rows_per_day)
        sizes = ", ".join(f"{fmt} {p.stat().st_size / mib:.0f} MiB" for fmt, p in files.items())
        print(
            f"source: {DAYS} days x {rows_per_day} rows ({sizes}), built in {time.monotonic() - started:.0f} s"
        )
        print(
            f"{'format':8} {'rows':>8} {'day MiB':>8} {'baseline':>9} {'peak':>8} {'over base':>9} {'ratio':>6}"
        )
        ok = True
        for fmt, path in files.items():
            m = measure(path, fmt)
            over = m["peak"] - m["baseline"]
            ratio = over / m["day_bytes"]
            print(
                f"{fmt:8} {m['rows']:>8} {m['day_bytes'] / mib:>8.1f} {m['baseline'] / mib:>8.0f}M"
                f" {m['peak'] / mib:>7.0f}M {over / mib:>8.1f}M {ratio:>6.2f}"
                + ("" if ratio <= TARGET_RATIO else f"  (above the {TARGET_RATIO:.0f}x target)")
            )
            if m["rows"] != rows_per_day:
                print(f"WRONG: {fmt} read {m['rows']} rows for {PICK}, expected {rows_per_day}")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
