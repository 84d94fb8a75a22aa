"""Datasets by URI: read a source for a logical date, write lake partitions atomically.

A partition is ``<root>/<pipeline>/<stage>/ds=YYYY-MM-DD/`` holding data files and
``_manifest.json`` (rows, schema, sha256 of every file). The partition is built in a hidden
temporary folder beside its final place, then committed; the manifest is what makes a partition
visible, so a reader that finds a manifest finds a complete partition, and a failed write leaves
nothing behind.

Commit on a local disk is a rename. Object stores (``s3://``, ``gs://``, ``abfs://``) have no
rename of a folder, so there the commit is: delete the old manifest (the partition turns
invisible, never half-visible), copy the data files, drop files the new manifest does not list,
write the manifest last. Readers check every file's sha256 against the manifest.

URIs resolve to fsspec filesystems; the Airflow layer installs a resolver
(:func:`set_resolver`) so ``s3://``, ``gs://`` and ``abfs://`` go through Airflow's
``ObjectStoragePath`` and the cloud profile's connection.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.settings import expand

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

    from mlops_core.spec import SourceSpec

MANIFEST = "_manifest.json"


class SourceDataError(ValueError):
    """The source has no usable rows for the requested date; the message says where it looked."""


@dataclass
class FileEntry:
    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """What a partition holds. ``sha256`` hashes the file hashes, so it identifies the content."""

    uri: str
    pipeline: str
    stage: str
    ds: str
    rows: int
    columns: list[dict[str, str]]
    files: list[FileEntry]
    sha256: str
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["files"] = [FileEntry(**f) for f in raw["files"]]
        return cls(**raw)


Resolver = Callable[[str, "dict[str, Any] | None"], "tuple[AbstractFileSystem, str] | None"]
_resolver: Resolver | None = None


def set_resolver(resolver: Resolver | None) -> None:
    """Install how URIs become filesystems (the Airflow layer: ObjectStoragePath + connections).

    The resolver returns None for URIs it leaves to fsspec's defaults (local paths).
    """
    global _resolver
    _resolver = resolver


def filesystem(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """Resolve a URI (``${VAR}`` expanded) to an fsspec filesystem and a path on it."""
    from fsspec.core import url_to_fs

    uri = expand(uri)
    if _resolver is not None and (found := _resolver(uri, storage_options)) is not None:
        return found
    return url_to_fs(uri, **(storage_options or {}))


def is_local(fs: AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def join(root: str, *parts: str) -> str:
    return "/".join([expand(root).rstrip("/"), *parts])


def partition_uri(root: str, pipeline: str, stage: str, ds: str | date) -> str:
    """``<root>/<pipeline>/<stage>/ds=YYYY-MM-DD``."""
    return join(root, pipeline, stage, f"ds={_as_date(ds).isoformat()}")


def _as_date(ds: str | date) -> date:
    if isinstance(ds, datetime):
        return ds.date()
    if isinstance(ds, date):
        return ds
    try:
        return date.fromisoformat(str(ds)[:10])
    except ValueError:
        raise ValueError(f"partition date {ds!r} is not YYYY-MM-DD") from None


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def write_partition(
    frames: dict[str, pd.DataFrame],
    root: str,
    pipeline: str,
    stage: str,
    ds: str | date,
    *,
    files: dict[str, bytes] | None = None,
    extra: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``frames`` (name -> DataFrame, stored as ``<name>.parquet``) and raw ``files`` atomically.

    An existing partition for the same date is replaced as a whole (re-runs and backfills
    overwrite, they never append).
    """
    if not frames and not files:
        raise ValueError("write_partition needs at least one frame or file")
    final_uri = partition_uri(root, pipeline, stage, ds)
    fs, final = filesystem(final_uri, storage_options)
    parent = final.rsplit("/", 1)[0]
    tmp = f"{parent}/.tmp-{final.rsplit('/', 1)[1]}-{uuid.uuid4().hex[:8]}"
    entries: list[FileEntry] = []
    columns: list[dict[str, str]] = []
    rows = 0
    try:
        fs.makedirs(tmp, exist_ok=True)
        for name, df in frames.items():
            blob = _parquet_bytes(df)
            fs.pipe(f"{tmp}/{name}.parquet", blob)
            entries.append(FileEntry(f"{name}.parquet", len(df), len(blob), hashlib.sha256(blob).hexdigest()))
            if not columns:
                columns = [{"name": str(c), "type": str(t)} for c, t in df.dtypes.items()]
                rows = len(df)
        for name, blob in (files or {}).items():
            fs.pipe(f"{tmp}/{name}", blob)
            entries.append(FileEntry(name, 0, len(blob), hashlib.sha256(blob).hexdigest()))
        digest = hashlib.sha256("".join(e.sha256 for e in entries).encode()).hexdigest()
        manifest = Manifest(
            uri=final_uri,
            pipeline=pipeline,
            stage=stage,
            ds=_as_date(ds).isoformat(),
            rows=rows,
            columns=columns,
            files=entries,
            sha256=digest,
            created_at=datetime.now(UTC).isoformat(),
            extra=extra or {},
        )
        fs.pipe(f"{tmp}/{MANIFEST}", manifest.to_json().encode())
        _commit(fs, tmp, final)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)
        raise
    return manifest


def _commit(fs: AbstractFileSystem, tmp: str, final: str) -> None:
    """Make the partition built in ``tmp`` the one at ``final``."""
    if is_local(fs):
        _commit_rename(fs, tmp, final)
    else:
        _commit_copy(fs, tmp, final)


def _commit_rename(fs: AbstractFileSystem, tmp: str, final: str) -> None:
    """Local disk: the old partition is moved aside first, deleted after."""
    old = None
    if fs.exists(final):
        old = f"{tmp}-old"
        fs.mv(final, old, recursive=True)
    try:
        fs.mv(tmp, final, recursive=True)
    except BaseException:
        if old is not None:
            fs.mv(old, final, recursive=True)
        raise
    if old is not None:
        fs.rm(old, recursive=True)


def _commit_copy(fs: AbstractFileSystem, tmp: str, final: str) -> None:
    """Object store: hide (drop the manifest), copy data, prune, publish (manifest last), clean up."""
    manifest = Manifest.from_json(fs.cat_file(f"{tmp}/{MANIFEST}").decode())
    keep = {e.name for e in manifest.files} | {MANIFEST}
    if fs.exists(f"{final}/{MANIFEST}"):
        fs.rm_file(f"{final}/{MANIFEST}")
    for entry in manifest.files:
        fs.copy(f"{tmp}/{entry.name}", f"{final}/{entry.name}")
    if fs.exists(final):
        for path in fs.find(final):
            if path.rsplit("/", 1)[-1] not in keep:
                fs.rm_file(path)
    fs.copy(f"{tmp}/{MANIFEST}", f"{final}/{MANIFEST}")
    fs.rm(tmp, recursive=True)


def read_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> Manifest:
    """Read a partition's manifest; a missing one means the partition is absent or incomplete."""
    fs, path = filesystem(uri, storage_options)
    target = f"{path.rstrip('/')}/{MANIFEST}"
    if not fs.exists(target):
        raise FileNotFoundError(
            f"no complete partition at {uri} (no {MANIFEST}); run the step that writes it first"
        )
    return Manifest.from_json(fs.cat_file(target).decode())


def read_frame(
    uri: str, name: str = "data", storage_options: dict[str, Any] | None = None, verify: bool = True
) -> pd.DataFrame:
    """Read ``<name>.parquet`` from a complete partition, checking its sha256 against the manifest."""
    import pandas as pd

    manifest = read_manifest(uri, storage_options)
    entry = next((f for f in manifest.files if f.name == f"{name}.parquet"), None)
    if entry is None:
        raise FileNotFoundError(
            f"partition {uri} has no {name}.parquet (has: {[f.name for f in manifest.files]})"
        )
    fs, path = filesystem(uri, storage_options)
    blob = fs.cat_file(f"{path.rstrip('/')}/{entry.name}")
    if verify and hashlib.sha256(blob).hexdigest() != entry.sha256:
        raise ValueError(
            f"{uri}/{entry.name} does not match its manifest sha256; the partition was modified after it was written"
        )
    return pd.read_parquet(io.BytesIO(blob))


def read_file(uri: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, path = filesystem(uri, storage_options)
    return fs.cat_file(path)


def _read_one(fs: AbstractFileSystem, path: str, fmt: str) -> pd.DataFrame:
    import pandas as pd

    with fs.open(path, "rb") as fh:
        return pd.read_csv(fh) if fmt == "csv" else pd.read_parquet(fh)


def read_source(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
) -> pd.DataFrame:
    """Rows of ``source`` selected by the logical date ``ds`` (see :class:`~mlops_core.spec.PartitionSpec`)."""
    import pandas as pd

    day = _as_date(ds)
    part = source.partition
    lookback = lookback_days or part.lookback_days
    if part.mode == "files":
        days = [day - timedelta(days=i) for i in range(lookback)]
        uris = [source.uri.replace("{ds}", d.isoformat()) for d in days]
        fs, _ = filesystem(uris[0], storage_options)
        found = [filesystem(u, storage_options)[1] for u in uris]
        found = [p for p in found if fs.exists(p)]
        if not found:
            raise SourceDataError(
                f"no source file for ds={day} in the last {lookback} day(s): looked for {uris[0]} and earlier"
            )
        frame = pd.concat([_read_one(fs, p, source.format) for p in sorted(found)], ignore_index=True)
    else:
        fs, path = filesystem(source.uri, storage_options)
        if not fs.exists(path):
            raise SourceDataError(
                f"source {expand(source.uri)} does not exist; check source.uri and its connection"
            )
        frame = _read_one(fs, path, source.format)
        if part.mode == "column":
            frame = _select_window(frame, str(part.column), day, lookback, source.uri)
    if frame.empty:
        raise SourceDataError(
            f"source {expand(source.uri)} has no rows for ds={day} (mode={part.mode}, lookback_days={lookback})"
        )
    return frame


def _select_window(frame: pd.DataFrame, column: str, day: date, lookback: int, uri: str) -> pd.DataFrame:
    import pandas as pd

    if column not in frame.columns:
        raise SourceDataError(
            f"source {uri} has no column {column!r} (partition.column); columns: {list(frame.columns)[:20]}"
        )
    stamps = pd.to_datetime(frame[column], errors="coerce", utc=True).dt.tz_localize(None).dt.normalize()
    end = pd.Timestamp(day)
    start = end - pd.Timedelta(days=lookback)
    return frame.loc[(stamps > start) & (stamps <= end)].reset_index(drop=True)
