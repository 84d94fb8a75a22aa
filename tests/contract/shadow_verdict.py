"""What the shadow tests of every endpoint target share: the verdict forced, the moves of ``champion`` counted.

The verdict's arithmetic (:func:`mlops_core.shadow.decide`, :mod:`mlops_core.monitor.shadow`) and the
deploy's checks it repeats (:func:`mlops_core.challenger.check_promotable`: gate record, approval,
digest) are tested on the local target (tests/unit/test_shadow.py, test_shadow_flow.py); these
tests fix the verdict and ask what each target then does to its endpoint and to the aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import pytest

DAY = "2026-01-05"


def force_verdict(monkeypatch: pytest.MonkeyPatch, action: str) -> list[tuple[str, str]]:
    """Make the verdict ``action`` (promote | reject); return the list the moves of ``champion`` go to."""
    from mlops_core import challenger, shadow
    from mlops_core.runs import registry, run_artifacts
    from tests.helpers import load_as_serving_container

    moves: list[tuple[str, str]] = []
    promote = registry.promote

    def counted(name: str, version: str, **kw: Any) -> str | None:
        moves.append((name, version))
        return promote(name, version, **kw)

    monkeypatch.setattr(
        shadow, "decide", lambda cfg, got, days: shadow.Verdict(action, ["forced by the test"])
    )
    monkeypatch.setattr(challenger, "check_promotable", lambda spec, version: None)
    monkeypatch.setattr(shadow, "_refresh_card", lambda *a: None)
    monkeypatch.setattr(registry, "promote", counted)
    # the tiny test versions carry no digest: load them as a serving image would (helpers' stand-in)
    monkeypatch.setattr(
        run_artifacts,
        "load_verified",
        lambda name, version, allow_pickle=False: load_as_serving_container(f"models:/{name}/{version}"),
    )
    return moves


def in_shadow(name: str, champion: str, shadow: str, holdout: str | None = None) -> None:
    """``champion`` and ``shadow`` aliases as a shadow deploy leaves them (and the version's holdout tag)."""
    from mlops_core.runs import registry

    client = registry.client()
    for alias in (registry.CHAMPION, registry.PREVIOUS, registry.SHADOW):
        if registry.alias_version(name, alias) is not None:
            client.delete_registered_model_alias(name, alias)
    client.set_registered_model_alias(name, registry.CHAMPION, champion)
    client.set_registered_model_alias(name, registry.SHADOW, shadow)
    if holdout is not None:
        client.set_model_version_tag(name, shadow, "mlops.holdout_uri", holdout)


def holdout(root: str, name: str, features: dict[str, list[Any]], target: str, labels: list[Any]) -> str:
    """A held-out partition (features + target) in the lake at ``root``; its URI."""
    from mlops_core.data import storage

    frame = pd.DataFrame({**features, target: labels})
    storage.write_partition({"data": frame}, root, name, "holdout", DAY)
    return storage.partition_uri(root, name, "holdout", DAY)


def aliases(name: str) -> dict[str, str | None]:
    from mlops_core.runs import registry

    return {
        a: registry.alias_version(name, a) for a in (registry.CHAMPION, registry.PREVIOUS, registry.SHADOW)
    }
