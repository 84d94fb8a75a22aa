"""Lake maintenance from the command line (cron, a BashOperator, a Kubernetes CronJob).

    python -m mlops_core.maintenance gc --pipeline breast_cancer [--root URI] [--keep 3]
        [--retention-days 7] [--dry-run]

Removes what no reader can need any more (see :func:`mlops_core.data.collector.collect_garbage`):
superseded manifest versions past the retention period, data files no kept manifest lists, and
leftovers of killed writers. A version named in lineage stays readable for the retention period.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from mlops_core.base import settings
from mlops_core.data import collector


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlops_core.maintenance", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    gc = sub.add_parser("gc", help="collect unreferenced lake files of one pipeline")
    gc.add_argument("--pipeline", required=True)
    gc.add_argument("--root", default=None, help="lake root URI (default: $MLOPS_LAKE / the local lake)")
    gc.add_argument("--keep", type=int, default=3, help="manifest versions kept per partition (>= 1)")
    gc.add_argument("--retention-days", type=float, default=7.0)
    gc.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    report = collector.collect_garbage(
        args.root or settings.lake_root(),
        args.pipeline,
        keep_versions=max(args.keep, 1),
        retention=timedelta(days=args.retention_days),
        dry_run=args.dry_run,
    )
    print(
        json.dumps(
            {
                "dry_run": report.dry_run,
                "removed": report.removed,
                "manifests": report.manifests,
                "files": report.files,
                "temporary": report.temporary,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
