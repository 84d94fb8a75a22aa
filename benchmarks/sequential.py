"""Live challenger benchmark: the sequential test's false-promotion rate and power by simulation.

Seeded runs of :func:`mlops_core.monitor.sequential.simulate`: a challenger on a canary split,
0/1 outcome (accuracy 0.80 on the champion), one look per day, alpha 0.05, margin 0. Printed:
for each (split, rows a day, max_rows), the share of A/A runs promoted (must stay under alpha),
the same runs judged by a naive fixed-sample z-test at every look (what peeking does), and the
share promoted within max_rows for true improvements of several sizes. Ends with a check that
fails the run if the false-promotion rate exceeds alpha by more than 3 standard errors.

    .venv/bin/python benchmarks/sequential.py [--quick] [--runs 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

# (split_percent, labelled rows a day, max_rows on the challenger arm)
SETTINGS = [(10, 1000, 3000), (10, 300, 3000), (25, 1000, 5000), (50, 200, 2000)]
EFFECTS = [0.01, 0.02, 0.03, 0.05]


def main() -> None:
    from mlops_core.monitor import sequential as sq

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs, two settings (CI)")
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = 1000 if args.quick else args.runs
    settings = SETTINGS[:2] if args.quick else SETTINGS
    started = time.perf_counter()
    print(
        f"| split | rows/day | max_rows | days | A/A promoted | naive peeking | {' | '.join(f'+{e}' for e in EFFECTS)} |"
    )
    print("|---|---|---|---|---|---|" + "---|" * len(EFFECTS))
    worst = 0.0
    for split, per_day, max_rows in settings:
        days = math.ceil(max_rows / max(1, round(per_day * split / 100)))
        plan = sq.TestPlan(alpha=0.05, split_percent=split, max_rows=max_rows, max_days=days)
        common = {"runs": runs, "days": days, "rows_per_day": per_day, "p_champion": 0.8, "seed": args.seed}
        null = sq.simulate(plan, p_challenger=0.8, **common)
        power = [sq.simulate(plan, p_challenger=0.8 + e, **common)["promote"] for e in EFFECTS]
        worst = max(worst, null["promote"])
        cells = " | ".join(f"{p:.3f}" for p in power)
        print(
            f"| {split}% | {per_day} | {max_rows} | {days} | {null['promote']:.4f} | {null['naive_promote']:.3f} | {cells} |"
        )
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
    print(f"{runs} runs per cell, {time.perf_counter() - started:.1f} s")
    if worst > bound:
        raise SystemExit(
            f"sequential benchmark: false promotion {worst:.4f} above alpha 0.05 (+3 SE {bound:.4f})"
        )
    print(f"sequential benchmark: results correct (worst false promotion {worst:.4f} <= {bound:.4f})")


if __name__ == "__main__":
    main()
