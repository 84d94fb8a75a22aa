"""A symbolic link in the landing zone is refused, never read as data (issue 23, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_core.base import settings
from mlops_core.data import sources
from mlops_core.data.errors import SourceDataError
from mlops_core.spec import SourceSpec

pytestmark = pytest.mark.unit

CSV = "a,b\n1,2\n3,4\n"


@pytest.fixture
def landing(local_dir: Path) -> Path:
    root = Path(settings.landing_root().removeprefix("file://"))
    (root / "demo").mkdir(parents=True)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A well-formed CSV outside the landing zone: what a link would hand the reader."""
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(CSV)
    return secret


def _read(uri: str = "${MLOPS_LANDING}/demo/data.csv", **source):
    return sources.read_source(SourceSpec(uri=uri, **source), "2026-01-31")


def test_a_real_file_in_the_landing_zone_is_read(landing):
    (landing / "demo" / "data.csv").write_text(CSV)
    assert _read()["a"].tolist() == [1, 3]


def test_etc_passwd_linked_into_the_landing_zone_is_refused(landing):
    (landing / "demo" / "data.csv").symlink_to("/etc/passwd")
    with pytest.raises(SourceDataError, match=r"data\.csv is a symbolic link; copy the file"):
        _read()


def test_a_link_to_a_well_formed_csv_is_refused_too(landing, outside):
    (landing / "demo" / "data.csv").symlink_to(outside)
    with pytest.raises(SourceDataError, match="symbolic link"):
        _read()


def test_a_linked_folder_is_refused(landing, outside):
    (landing / "linked").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(SourceDataError, match=r"linked is a symbolic link"):
        _read("${MLOPS_LANDING}/linked/secret.csv")


def test_a_link_among_a_window_of_daily_files_is_refused(landing, outside):
    (landing / "demo" / "d_2026-01-30.csv").write_text(CSV)
    (landing / "demo" / "d_2026-01-31.csv").symlink_to(outside)
    with pytest.raises(SourceDataError, match="symbolic link"):
        _read("${MLOPS_LANDING}/demo/d_{ds}.csv", partition={"mode": "files", "lookback_days": 2})


def test_a_link_outside_every_root_is_refused(tmp_path, local_dir, outside):
    link = tmp_path / "link.csv"
    link.symlink_to(outside)
    with pytest.raises(SourceDataError, match="symbolic link"):
        _read(link.as_uri())


def test_a_feature_table_reached_through_a_link_is_refused(landing, outside):
    from mlops_core.data import features
    from mlops_core.spec import FeatureJoin

    (landing / "features").symlink_to(outside.parent, target_is_directory=True)
    join = FeatureJoin(
        name="biopsies",
        store="table",
        table="${MLOPS_LANDING}/features/secret.csv",
        entity_columns=["a"],
        event_time="event_date",
        store_event_time="ts",
        features=["b"],
    )
    with pytest.raises(SourceDataError, match="symbolic link"):
        features._table_store(join, None)
