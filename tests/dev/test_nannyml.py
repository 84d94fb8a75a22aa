"""Our CBPE against NannyML's on the same data (development only: ``make test-nannyml``).

NannyML 0.13.1 does not fit the lock (it needs lightgbm < 4.6; the lock has 4.7.0), so it runs in
a venv of its own under ``.local/nannyml`` (made with uv on the first run; it needs the package
index). A seeded dataset with
overconfident scores and a covariate shift is written to Parquet; NannyML's ``CBPE`` is fitted on
the reference half and estimates the analysis chunks there; here the same reference calibrates
(:func:`mlops_core.model.calibration.check`, which fits the same isotonic regression on all of its
rows) and :func:`mlops_core.monitor.estimate.estimate_metrics` estimates the same chunks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_core.model import calibration
from mlops_core.monitor import estimate

pytestmark = pytest.mark.dev

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".local" / "nannyml"
VERSION = "0.13.1"
CHUNK = 500
METRICS = ("roc_auc", "f1", "accuracy", "precision", "recall")

SCRIPT = """
import json, sys
import pandas as pd
import nannyml as nml

reference = pd.read_parquet(sys.argv[1])
analysis = pd.read_parquet(sys.argv[2])
cbpe = nml.CBPE(
    y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
    problem_type="classification_binary", metrics=%(metrics)r, chunk_size=%(chunk)d,
)
cbpe.fit(reference)
frame = cbpe.estimate(analysis).filter(period="analysis").to_df()
out = {m: [float(v) for v in frame[(m, "value")]] for m in %(metrics)r}
out["needs_calibration"] = bool(cbpe.needs_calibration)
out["version"] = nml.__version__
json.dump(out, open(sys.argv[3], "w"))
"""


def _venv() -> Path:
    """A venv with nannyml (uv beside this interpreter): made once, then a quick no-op install.

    statsmodels too: nannyml 0.13.1 imports it (``nannyml.plots``) without declaring it."""
    python = VENV / "bin" / "python"
    uv = str(Path(sys.executable).with_name("uv"))
    if not python.exists():
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(VENV)], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "-p", str(python), f"nannyml=={VERSION}", "statsmodels", "pyarrow"],
        check=True,
        timeout=1200,
    )
    return python


def _frame(rng: np.random.Generator, n: int, scale: float):
    import pandas as pd

    x1, x2 = rng.normal(0.0, scale, n), rng.normal(0.0, 1.0, n)
    logit = 2.0 * x1 + x2 - 0.5
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    score = 1.0 / (1.0 + np.exp(-2.5 * logit))  # overconfident: needs calibrating
    return pd.DataFrame({"y_true": y, "y_pred_proba": score, "y_pred": (score >= 0.5).astype(int)})


def test_our_estimate_matches_nannymls_cbpe_per_chunk(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(7)
    reference = _frame(rng, 5000, 1.0)
    # six chunks of CHUNK rows: three as the reference, three with x1's spread shrinking
    analysis = pd.concat([_frame(rng, CHUNK, s) for s in (1.0, 1.0, 1.0, 0.7, 0.5, 0.3)], ignore_index=True)
    paths = [tmp_path / f"{name}.parquet" for name in ("reference", "analysis")]
    reference.to_parquet(paths[0])
    analysis.to_parquet(paths[1])
    script = tmp_path / "nml.py"
    script.write_text(SCRIPT % {"metrics": list(METRICS), "chunk": CHUNK})
    out = tmp_path / "theirs.json"
    subprocess.run([str(_venv()), str(script), *map(str, paths), str(out)], check=True, timeout=900)
    theirs = json.loads(out.read_text())

    cal = calibration.check(
        reference["y_true"].to_numpy(), reference["y_pred_proba"].to_numpy(), max_ece=0.05, bins=10
    )
    assert theirs["needs_calibration"] and cal["calibrator"] is not None  # both calibrate these scores
    rows = []
    for i in range(len(analysis) // CHUNK):
        chunk = analysis.iloc[i * CHUNK : (i + 1) * CHUNK]
        s = chunk["y_pred_proba"].to_numpy()
        ours = estimate.estimate_metrics(calibration.apply(cal, s), s, chunk["y_pred"].to_numpy() == 1)
        rows.append({m: (ours[m], theirs[m][i]) for m in METRICS})
    print(f"\nnannyml {theirs['version']}: chunk | " + " | ".join(f"{m} ours / theirs" for m in METRICS))
    for i, row in enumerate(rows):
        print(f"  {i} | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in row.values()))
    worst = max(abs(a - b) for row in rows for a, b in row.values())
    print(f"  largest |ours - theirs|: {worst:.2e}")
    assert len(rows) == len(theirs["roc_auc"]) == 6
    for row in rows:
        for m, (a, b) in row.items():
            assert abs(a - b) < 1e-4, (m, a, b)  # the same formulas: only NannyML's 5-decimal rounding
