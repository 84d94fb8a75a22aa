"""A shadow's predictions against the champion's on the same rows (``deployment.shadow``).

Batch and monitoring scoring write the shadow's predictions of every row in a sibling partition
(``<stage>_shadow``, :func:`mlops_core.scoring.batch_score`): the same row keys in the same order
as the served partition it names. :func:`collect` reads the monitored days of one
shadow/champion pair side by side; :func:`compare` measures how far apart the two are: the share of
rows whose predicted label differs (classifiers), the Kolmogorov-Smirnov statistic between the two
score distributions, and, on the rows whose labels have arrived (:mod:`mlops_core.monitor.feedback`),
the paired bootstrap interval of the metric (:func:`mlops_core.model.evaluation.paired_bootstrap`,
the gate's own). The decision is :func:`mlops_core.shadow.judge`'s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.data import filesystems, storage
from mlops_core.monitor import feedback, label_keys

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

STAGE = feedback.PREDICTIONS + "_shadow"  # what the monitoring DAG's score step writes beside its own
# a mirroring target's live traffic (SageMaker's captured requests): the champion's answers, the shadow's
TRAFFIC, TRAFFIC_STAGE = "traffic_predictions", "traffic_predictions_shadow"
PREFIX = "shadow__"  # the shadow's columns, side by side with the champion's in one frame


@dataclass
class Paired:
    """Both models' predictions of the same rows over the monitored days of one pair."""

    days: list[str] = field(default_factory=list)
    frame: Any = None  # champion columns + the shadow's under PREFIX
    skipped: list[str] = field(default_factory=list)  # days that could not be paired, and why

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)


@dataclass
class Comparison:
    """How the shadow's predictions differ from the champion's."""

    rows: int
    disagreement: float | None = None  # share of rows whose predicted label differs (classifiers)
    score_shift: float | None = None  # KS statistic between the score distributions (largest over classes)
    score: str | None = None  # what was compared: proba_<class> columns or prediction
    labelled: int = 0
    metric: str | None = None
    delta: float | None = None  # improvement = shadow better > 0, in the metric's better direction
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    champion_value: float | None = None
    shadow_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def shadow_days(spec: PipelineSpec, lake_root: str, until: str, stage: str = STAGE) -> list[str]:
    """The days (up to ``until``) that have a shadow partition, oldest first."""
    fs, root = filesystems.filesystem(filesystems.join(lake_root, spec.name, stage))
    if not fs.exists(root):
        return []
    names = (str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    return sorted(n[3:13] for n in names if n.startswith("ds=") and n[3:13] <= until)


def collect(
    spec: PipelineSpec, lake_root: str, shadow: str, champion: str, until: str, *, traffic: bool = False
) -> Paired:
    """Every monitored day up to ``until`` on which ``shadow`` scored beside ``champion``, paired row by row.

    A day pairs only when its shadow partition names the served partition's current version (a
    re-scored day without the shadow leaves a stale sibling: skipped, with the reason); with a
    column-partitioned source only each day's own rows count (``prediction_ds``), so the overlapping
    windows of consecutive days never count a row twice. ``traffic``: the mirrored live requests
    (:data:`TRAFFIC` and :data:`TRAFFIC_STAGE`) instead of batch scoring's partitions.
    """
    import pandas as pd

    served_stage, side_stage = (TRAFFIC, TRAFFIC_STAGE) if traffic else (feedback.PREDICTIONS, STAGE)
    out = Paired()
    parts = []
    for ds in shadow_days(spec, lake_root, until, side_stage):
        side_uri = storage.partition_uri(lake_root, spec.name, side_stage, ds)
        served_uri = storage.partition_uri(lake_root, spec.name, served_stage, ds)
        try:
            extra = storage.read_manifest(side_uri).extra
        except FileNotFoundError:  # a folder without a published version
            continue
        if str(extra.get("shadow_version")) != shadow or str(extra.get("champion_version")) != champion:
            continue  # another pair's day
        try:
            served_version = storage.read_manifest(served_uri).version
        except FileNotFoundError:
            out.skipped.append(f"{ds}: the served predictions are gone")
            continue
        if served_version != extra.get("served_version"):
            out.skipped.append(
                f"{ds}: re-scored since the shadow scored it (served version {served_version})"
            )
            continue
        served = storage.read_frame(served_uri, version=served_version)
        side = storage.read_frame(side_uri)
        if len(served) != len(side):
            out.skipped.append(f"{ds}: {len(served)} served rows, {len(side)} shadow rows")
            continue
        both = pd.concat(
            [served.reset_index(drop=True), side.add_prefix(PREFIX).reset_index(drop=True)], axis=1
        )
        if "prediction_ds" in both.columns:
            both = both.loc[both["prediction_ds"].astype(str) == ds]
        out.days.append(ds)
        parts.append(both)
    if parts:
        out.frame = pd.concat(parts, ignore_index=True)
    return out


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the champion's columns, the shadow's under the same names) of a paired frame."""
    shadow_cols = [c for c in frame.columns if c.startswith(PREFIX)]
    champion = frame[[c for c in frame.columns if not c.startswith(PREFIX)]]
    return champion, frame[shadow_cols].rename(columns=lambda c: c.removeprefix(PREFIX))


def ks_statistic(a: Any, b: Any) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    import numpy as np

    a = np.sort(np.asarray(a, dtype=float)[~np.isnan(np.asarray(a, dtype=float))])
    b = np.sort(np.asarray(b, dtype=float)[~np.isnan(np.asarray(b, dtype=float))])
    if not len(a) or not len(b):
        return math.nan
    grid = np.concatenate([a, b])
    gap = np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def _score_shift(
    spec: PipelineSpec, champion: pd.DataFrame, shadow: pd.DataFrame
) -> tuple[float | None, str | None]:
    """KS between the score distributions: the prediction (regression), else each shared proba column's
    (the positive class's for binary); None when a classifier wrote no probabilities."""
    if spec.problem_type == "regression":
        return ks_statistic(champion["prediction"], shadow["prediction"]), "prediction"
    cols = [c for c in champion.columns if c.startswith("proba_") and c in shadow.columns]
    if spec.problem_type == "binary":
        positive = feedback._positive(spec, champion)
        cols = [c for c in cols if c == f"proba_{positive}"]
    if not cols:
        return None, None
    shifts = {c: ks_statistic(champion[c], shadow[c]) for c in cols}
    worst = max(shifts, key=lambda c: shifts[c])
    return shifts[worst], worst


def read_labels(spec: PipelineSpec, days: list[str], ds: str) -> pd.DataFrame:
    """The labels of the shadow's days as the feedback loop reads them: for prediction day T those
    arrived by ``min(T + delay_days, ds)``; a key labelled twice keeps the latest read."""
    import pandas as pd

    fb = spec.feedback
    assert fb is not None
    reads = sorted(
        {min((date.fromisoformat(t) + timedelta(days=fb.delay_days)).isoformat(), ds[:10]) for t in days}
    )
    frames = [feedback.read_labels(spec, r) for r in reads]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=[*fb.key_columns, "label"])
    labels = label_keys.key_text(pd.concat(frames, ignore_index=True), list(fb.key_columns))
    return labels.drop_duplicates(subset=list(fb.key_columns), keep="last").reset_index(drop=True)


def compare(spec: PipelineSpec, paired: Paired, labels: pd.DataFrame | None) -> Comparison:
    """Agreement, score shift and (on the labelled rows) the paired metric interval of shadow vs champion."""
    champion, shadow = split(paired.frame)
    result = Comparison(rows=len(champion))
    if spec.problem_type != "regression":
        same = champion["prediction"].astype(str).to_numpy() == shadow["prediction"].astype(str).to_numpy()
        result.disagreement = float(1.0 - same.mean()) if len(same) else None
    result.score_shift, result.score = _score_shift(spec, champion, shadow)
    if labels is not None and len(labels) and spec.feedback is not None:
        _paired_metric(spec, paired.frame, labels, result)
    return result


def _labels_of(spec: PipelineSpec, frame: pd.DataFrame) -> np.ndarray:
    if spec.problem_type == "regression":
        return frame["label"].to_numpy(dtype=float)
    return frame["label"].astype(str).to_numpy()


def _paired_metric(spec: PipelineSpec, frame: pd.DataFrame, labels: pd.DataFrame, result: Comparison) -> None:
    """The shadow's improvement over the champion on the labelled rows (both models, the same rows)."""
    from mlops_core.model.evaluation import metric, paired_bootstrap

    assert spec.feedback is not None
    keys = list(spec.feedback.key_columns)
    if any(k not in frame.columns for k in keys):
        return
    rows = label_keys.key_text(frame, keys).drop_duplicates(
        subset=keys, keep="last"
    )  # a row scored on two days: once
    joined = rows.merge(labels, on=keys, how="inner")
    result.labelled, result.metric = len(joined), spec.shadow_metric
    if not len(joined):
        return
    champion, shadow = split(joined)
    positive = feedback._positive(spec, champion)
    a, b = feedback._scored(spec, shadow, positive), feedback._scored(spec, champion, positive)
    y = _labels_of(spec, champion)
    boot = spec.evaluation.bootstrap
    got = paired_bootstrap(
        spec.shadow_metric, spec.problem_type, y, a, b, positive=positive,
        n_resamples=boot.n_resamples, confidence=boot.confidence, seed=boot.seed,
    )  # fmt: skip
    result.delta, result.low, result.high, result.confidence = got.delta, got.low, got.high, got.confidence
    result.shadow_value = metric(spec.shadow_metric, spec.problem_type, y, a, positive)
    result.champion_value = metric(spec.shadow_metric, spec.problem_type, y, b, positive)
