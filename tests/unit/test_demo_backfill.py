"""The demo's ``airflow backfill create`` beside running services on SQLite: a lost lock race is run
again, unless the backfill landed; any other failure is raised at once."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_dev import demo

pytestmark = pytest.mark.unit

LOCKED = "airflow backfill create exited 1:\nsqlite3.OperationalError: database is locked"


class FakeStack:
    def __init__(self, failures: list[str], listed: int = 0) -> None:
        self.failures, self.listed = failures, listed
        self.calls: list[tuple[str, ...]] = []
        self.asked: list[str] = []

    def cli(self, *args: str) -> None:
        self.calls.append(args)
        if self.failures:
            raise RuntimeError(self.failures.pop(0))

    def api(self, method: str, path: str) -> dict[str, Any]:
        self.asked.append(f"{method} {path}")
        return {"backfills": [{}] * self.listed, "total_entries": self.listed}


@pytest.fixture(autouse=True)
def _no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.time, "sleep", lambda _s: None)


def test_a_lost_lock_race_runs_the_command_again() -> None:
    stack = FakeStack([LOCKED, LOCKED])
    demo.backfill_create(stack, "m", "2026-02-01", "2026-02-03")  # type: ignore[arg-type]
    expected = ("backfill", "create", "--dag-id", "m", "--from-date", "2026-02-01", "--to-date", "2026-02-03")
    assert stack.calls == [expected] * 3
    assert stack.asked == ["GET /backfills?dag_id=m"] * 2


def test_a_backfill_that_landed_is_not_created_twice() -> None:
    stack = FakeStack([LOCKED], listed=1)
    demo.backfill_create(stack, "m", "2026-02-01", "2026-02-03")  # type: ignore[arg-type]
    assert len(stack.calls) == 1


def test_another_failure_or_a_fourth_lost_race_is_raised() -> None:
    with pytest.raises(RuntimeError, match="no such DAG"):
        demo.backfill_create(FakeStack(["no such DAG"]), "m", "a", "b")  # type: ignore[arg-type]
    stack = FakeStack([LOCKED] * 4)
    with pytest.raises(RuntimeError, match="database is locked"):
        demo.backfill_create(stack, "m", "a", "b")  # type: ignore[arg-type]
    assert len(stack.calls) == 4
