"""Batch scoring: the champion's predictions on a partition, written to the lake.

:func:`batch_score` scores the rows with the ``champion`` version (loaded verified), keys each
row (an id column, else :func:`row_keys`), flags values the model never saw in training, and
writes the predictions as a partition that the feedback loop joins with labels later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_core.data import storage
from mlops_core.runs import registry, run_artifacts

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


def row_keys(frame: pd.DataFrame) -> pd.Series:
    """A stable key per row when the data has no id column: a 64-bit hash of its values (16 hex).

    The same row gets the same key in every run (column order and dtypes as read), so
    predictions can be joined with labels that arrive later; identical rows share a key.
    """
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False, categorize=True)
    return hashed.map(lambda h: f"{int(h) & 0xFFFFFFFFFFFFFFFF:016x}").astype("string")


def batch_score(
    spec: PipelineSpec, data_uri: str, lake_root: str, ds: str, *, stage: str = "predictions"
) -> dict[str, Any]:
    """Score a partition with the champion; write ``<lake>/<name>/<stage>/ds=<ds>/`` with the model version."""
    import pandas as pd

    from mlops_core.data import contract
    from mlops_core.runs import tracking

    tracking.configure()
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        raise LookupError(
            f"model {spec.registered_model_name!r} has no champion yet; run {spec.name}_training first"
        )
    source = storage.read_manifest(data_uri)
    frame = storage.read_frame(data_uri, version=source.version)
    model = run_artifacts.load_verified(
        spec.registered_model_name, version, allow_pickle=spec.model.allow_pickle
    )
    X = frame.drop(columns=[c for c in [spec.target] if c in frame.columns])
    out = key_columns(spec, frame, X)
    keyed = list(out.columns)  # the row keys the shadow's sibling partition repeats
    arms = _arms(spec, version, model, out)
    for variant, (arm_version, arm_model, rows) in arms.items():
        _predict(spec, out, X, arm_model, rows)
        if spec.deployment.challenger is not None and spec.deployment.challenger.enabled:
            _put(out, rows, "variant", variant)  # which arm of the canary split scored the row
        _put(out, rows, "model_version", arm_version)
    out[contract.UNSEEN_COLUMN], unseen = contract.unseen(run_artifacts.version_contract(spec, version), X)
    out["model_name"] = spec.registered_model_name
    out["input_version"] = source.version  # the exact input partition version that was scored
    out["scored_at"] = pd.Timestamp.now(tz="UTC")
    manifest = storage.write_partition(
        {"data": out},
        lake_root,
        spec.name,
        stage,
        ds,
        extra={
            "model_version": version,
            "input": data_uri,
            "input_version": source.version,
            **({"challenger_version": arms["challenger"][0]} if "challenger" in arms else {}),
        },
    )
    log.info("scored %d rows with %s v%s -> %s", len(out), spec.registered_model_name, version, manifest.uri)
    flagged = _report_unseen(out[contract.UNSEEN_COLUMN], unseen, version)
    shadow = _score_shadow(spec, out[keyed], X, version, manifest, lake_root, stage, ds)
    return {"uri": manifest.uri, "rows": len(out), "model_version": version, **flagged, **shadow}


SHADOW_SUFFIX = "_shadow"  # deployment.shadow: <stage>_shadow/ds=<ds>/ beside <stage>/ds=<ds>/


def _score_shadow(
    spec: PipelineSpec,
    keys: pd.DataFrame,
    X: pd.DataFrame,
    champion: str,
    served: storage.Manifest,
    lake_root: str,
    stage: str,
    ds: str,
) -> dict[str, Any]:
    """``deployment.shadow``: every row scored by the ``shadow`` version too, written to the sibling
    partition ``<stage>_shadow`` (the same keys, in the same order, the same prediction columns).

    The served partition is written first and never touched; a shadow that fails to load or score
    is logged and skipped (it must not cost the served predictions), and the verdict counts only
    the days it scored. The manifest names the served partition's version it sits beside.
    """
    import numpy as np

    if not spec.deployment.shadow_on:
        return {}
    name = spec.registered_model_name
    shadow = registry.alias_version(name, registry.SHADOW)
    if shadow is None or shadow == champion:
        return {}
    try:
        model = run_artifacts.load_verified(name, shadow, allow_pickle=spec.model.allow_pickle)
        side = keys.copy()
        _predict(spec, side, X, model, np.ones(len(side), dtype=bool))
        side["model_version"] = shadow
        manifest = storage.write_partition(
            {"data": side},
            lake_root,
            spec.name,
            stage + SHADOW_SUFFIX,
            ds,
            extra={
                "shadow_version": shadow,
                "champion_version": champion,
                "served_uri": served.uri,
                "served_version": served.version,
            },
        )
    except Exception as err:  # the served predictions are already written; the shadow never costs them
        log.error(
            "shadow v%s of %s could not score %s (%s): no shadow predictions this day", shadow, name, ds, err
        )
        return {"shadow_version": shadow, "shadow_error": f"{type(err).__name__}: {str(err)[:300]}"}
    log.info("shadow v%s scored the same %d row(s) -> %s", shadow, len(side), manifest.uri)
    return {"shadow_version": shadow, "shadow_uri": manifest.uri}


def key_columns(spec: PipelineSpec, frame: pd.DataFrame, X: pd.DataFrame) -> pd.DataFrame:
    """The output's key columns: the id and time columns, ``feedback.key_columns`` (a natural key of
    feature columns, e.g. date + carrier + flight number, is how real label feeds name a row), a
    ``row_key`` when there is no id column, and ``prediction_ds`` (the day each row was predicted
    for) with a column-partitioned source."""
    from mlops_core.data import dates

    named = spec.features.id_columns + spec.features.time_columns
    named += [k for k in (spec.feedback.key_columns if spec.feedback else []) if k not in named]
    keep = [c for c in named if c in frame.columns]
    out = frame[keep].copy()
    if not spec.features.id_columns:  # every prediction can be joined back: a stable row key
        out.insert(0, "row_key", row_keys(X))
    day_column = spec.source.partition.column if spec.source.partition.mode == "column" else None
    if day_column and day_column in frame.columns:  # the day each row was predicted for (a window holds many)
        days = dates.parse_days(frame[day_column])  # the partition filter's own rule (UTC days)
        out["prediction_ds"] = days.dt.strftime("%Y-%m-%d").astype("string").to_numpy()
    return out


def _arms(spec: PipelineSpec, version: str, model: Any, out: pd.DataFrame) -> dict[str, tuple[str, Any, Any]]:
    """variant -> (version, model, rows): all rows to the champion, or with a live challenger
    (``deployment.challenger``) ``split_percent`` % of the row keys to it (a stable hash)."""
    import numpy as np

    from mlops_core.monitor import sequential

    everyone = np.ones(len(out), dtype=bool)
    ch = spec.deployment.challenger
    if ch is None or not ch.enabled:
        return {"champion": (version, model, everyone)}
    live = registry.alias_version(spec.registered_model_name, registry.LIVE_CHALLENGER)
    if live is None or live == version:
        return {"champion": (version, model, everyone)}
    keys = [c for c in (spec.feedback.key_columns if spec.feedback else []) if c in out.columns] or [
        "row_key"
    ]
    joined = out[keys].astype("string").fillna("").agg("|".join, axis=1).to_numpy()
    to_live = sequential.arm_of(joined, ch.split_percent, salt=f"v{live}")
    challenger = run_artifacts.load_verified(
        spec.registered_model_name, live, allow_pickle=spec.model.allow_pickle
    )
    log.info(
        "live challenger v%s scores %d of %d row(s) (split %d%%)",
        live,
        to_live.sum(),
        len(out),
        ch.split_percent,
    )
    return {"champion": (version, model, ~to_live), "challenger": (live, challenger, to_live)}


def _predict(spec: PipelineSpec, out: pd.DataFrame, X: pd.DataFrame, model: Any, rows: Any) -> None:
    """``prediction`` (and ``proba_<class>`` for classifiers) of ``model`` on ``rows``, written into ``out``."""
    if not rows.any():
        return
    part = X.loc[rows]
    _put(out, rows, "prediction", model.predict(part))  # unseen categories too: the encoder ignores them
    if spec.problem_type != "regression" and hasattr(model, "predict_proba"):
        proba = model.predict_proba(part)
        for i, cls in enumerate(model.classes_):
            _put(out, rows, f"proba_{cls}", proba[:, i])


def _put(out: pd.DataFrame, rows: Any, column: str, values: Any) -> None:
    """Set ``column`` on ``rows``: the whole column (its dtype kept) when every row is one arm's."""
    if rows.all():
        out[column] = values
    else:
        out.loc[rows, column] = values


def _report_unseen(flags: pd.Series, per_column: dict[str, int], version: str) -> dict[str, Any]:
    """Log (and return for XCom) how many scored rows hold a category the model never trained on."""
    from mlops_core.data import contract

    if flags.isna().all():
        log.warning(
            "v%s has no contract.json with category sets: %s is unknown (<NA>) on every row",
            version,
            contract.UNSEEN_COLUMN,
        )
        return {"unseen_rows": None, "unseen_share": None, "unseen_by_column": {}}
    rows = int(flags.sum())
    share = rows / len(flags) if len(flags) else 0.0
    if rows:
        log.warning(
            "%d of %d scored row(s) (%.1f%%) hold categories v%s never trained on (%s): scored (the encoder "
            "ignores an unknown category) and flagged in column %s",
            rows,
            len(flags),
            100 * share,
            version,
            ", ".join(f"{c}: {n}" for c, n in sorted(per_column.items())),
            contract.UNSEEN_COLUMN,
        )
    else:
        log.info("no scored row holds a category v%s never trained on", version)
    return {"unseen_rows": rows, "unseen_share": round(share, 6), "unseen_by_column": per_column}
