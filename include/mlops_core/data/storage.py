"""Datasets by URI: read a source for a logical date, write lake partitions with a commit protocol.

A partition is ``<root>/<pipeline>/<stage>/ds=YYYY-MM-DD/``. Its content is a sequence of
versions; the commit protocol is the same on a local disk, S3, GCS and ADLS (the Delta/Iceberg
idea):

1. Data files are immutable and uniquely named: ``data.parquet`` of commit ``c`` is stored as
   ``data-<c>.parquet`` beside the other versions' files. Nothing is ever overwritten or renamed,
   so there is no temporary folder and nothing to copy.
2. A version becomes visible in one atomic write of its manifest,
   ``_manifests/<version:020d>.json``, created only if absent: ``os.link`` of a fully written
   temporary file on a local disk, a conditional PUT on object stores (S3 ``If-None-Match: *``,
   GCS ``ifGenerationMatch=0``, Azure ``overwrite=False``, all through fsspec's
   ``pipe_file(mode="create")``). A writer that loses version ``N`` to another writer retries as
   ``N + 1``: racing writers both publish whole versions, the newest is visible.
3. Readers take the newest manifest and the files it lists (or exactly ``version=N``). Since data
   files are never overwritten, a reader sees a whole old or new version, never a half one, and
   every file's sha256 matches its manifest.
4. :func:`collect_garbage` removes versions beyond the newest ``keep_versions`` once they have been
   superseded for longer than ``retention``, and files no kept manifest lists (a crashed writer's
   leftovers) once they are older than ``retention``. A version named in lineage (the
   ``mlops.raw_manifest_version`` tag) therefore stays readable for at least ``retention`` after
   it stopped being the newest.

A partition written by the old layout (one ``_manifest.json`` and files under their plain names)
reads as version 0; the next write supersedes it and the collector removes it like any version.

URIs resolve to fsspec filesystems; the Airflow layer installs a resolver
(:func:`set_resolver`) so ``s3://``, ``gs://`` and ``abfs://`` go through Airflow's
``ObjectStoragePath`` and the cloud profile's connection.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.base.settings import expand, landing_root, redact
from mlops_core.data.dates import ACCEPTED
from mlops_core.data.errors import SourceDataError, SourceNotReady

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import pandas as pd
    import pyarrow as pa
    from fsspec import AbstractFileSystem

    from mlops_core.spec import SourceSpec

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"  # the old layout's single manifest, read as version 0
MANIFESTS = "_manifests"
PUBLISH_ATTEMPTS = 50
CSV_CHUNK_ROWS = 16_384  # rows of Python strings per strict-parse chunk: bounds the reader
PARQUET_BATCH_ROWS = 65_536
_VERSION_FILE = re.compile(r"^(\d{20})\.json$")


@dataclass
class FileEntry:
    """One file of a version: ``name`` as callers know it, ``path`` where it is stored (relative)."""

    name: str
    rows: int
    bytes: int
    sha256: str
    path: str = ""

    def __post_init__(self) -> None:
        self.path = self.path or self.name  # the old layout stored files under their names


@dataclass
class Manifest:
    """What a partition version holds. ``sha256`` hashes the file hashes, so it identifies the content.

    ``version`` numbers the partition's versions from 1 (0: the old single-manifest layout);
    ``commit`` is the writer's unique id, part of every data file's stored name.
    """

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
    version: int = 0
    commit: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        raw = json.loads(text)
        raw["files"] = [FileEntry(**f) for f in raw["files"]]
        return cls(**raw)

    @property
    def manifest_uri(self) -> str:
        """The manifest file of this version (the exact thing lineage points at)."""
        return join(self.uri, MANIFEST if self.version == 0 else f"{MANIFESTS}/{self.version:020d}.json")

    def file_uri(self, name: str) -> str:
        """The stored, immutable URI of the file called ``name`` in this version."""
        return join(self.uri, _entry(self, name, self.uri).path)


@dataclass
class GarbageReport:
    """What :func:`collect_garbage` removed (or would remove, with ``dry_run``), as URIs/paths."""

    manifests: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    kept_versions: dict[str, list[int]] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def removed(self) -> int:
        return len(self.manifests) + len(self.files) + len(self.temporary)


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
    if uri[:6].lower() == "dvc://":  # fsspec would open a DVC repo in the working directory
        raise SourceDataError(
            f"{uri} is a path inside source.dvc's repository; it is read by mlops_core.data.dvc_source"
        )
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


def _checkpoint(step: str) -> None:
    """A named point of the commit (``data_file``, ``data_written``, ``manifest_staged``, ``published``).

    Does nothing; the fault tests replace it in a writer process to kill that process right there.
    """


def _stored_name(name: str, commit: str) -> str:
    """``data.parquet`` -> ``data-<commit>.parquet`` (folders and extensions kept)."""
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return f"{folder}{slash}{stem}-{commit}{dot}{ext}"


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
    """Write ``frames`` (name -> DataFrame, stored as ``<name>.parquet``) and raw ``files`` as a new version.

    The new version replaces the partition as a whole for readers (re-runs and backfills
    overwrite, they never append); the previous versions stay readable by number until
    :func:`collect_garbage` removes them. A write that fails before its manifest is published
    leaves the previous version current and removes the files it wrote (a killed writer's files
    are left to the collector).
    """
    if not frames and not files:
        raise ValueError("write_partition needs at least one frame or file")
    final_uri = partition_uri(root, pipeline, stage, ds)
    fs, final = filesystem(final_uri, storage_options)
    commit = uuid.uuid4().hex[:16]
    written: list[str] = []
    publishing = False
    try:
        entries, columns, rows = _write_data(fs, final, commit, frames, files or {}, written)
        _checkpoint("data_written")
        manifest = Manifest(
            uri=final_uri,
            pipeline=pipeline,
            stage=stage,
            ds=_as_date(ds).isoformat(),
            rows=rows,
            columns=columns,
            files=entries,
            sha256=hashlib.sha256("".join(e.sha256 for e in entries).encode()).hexdigest(),
            created_at=datetime.now(UTC).isoformat(),
            extra=extra or {},
            commit=commit,
        )
        publishing = True  # from here a failure may have published: never delete the data files
        _publish(fs, final, manifest)
    except BaseException:
        if not publishing:
            _discard(fs, final, written)
        raise
    return manifest


def _write_data(
    fs: AbstractFileSystem,
    final: str,
    commit: str,
    frames: dict[str, pd.DataFrame],
    files: dict[str, bytes],
    written: list[str],
) -> tuple[list[FileEntry], list[dict[str, str]], int]:
    """Write every file under its unique name (``written`` collects them for cleanup)."""
    entries: list[FileEntry] = []
    columns: list[dict[str, str]] = []
    rows = 0
    if is_local(fs):  # object stores have no folders to make
        fs.makedirs(final, exist_ok=True)
    blobs = [(f"{n}.parquet", df) for n, df in frames.items()] + list(files.items())
    for name, content in blobs:
        blob = _parquet_bytes(content) if not isinstance(content, bytes) else content
        stored = _stored_name(name, commit)
        written.append(f"{final}/{stored}")
        fs.pipe_file(f"{final}/{stored}", blob)
        n_rows = 0 if isinstance(content, bytes) else len(content)
        entries.append(FileEntry(name, n_rows, len(blob), hashlib.sha256(blob).hexdigest(), stored))
        if not columns and not isinstance(content, bytes):
            columns = [{"name": str(c), "type": str(t)} for c, t in content.dtypes.items()]
            rows = len(content)
        _checkpoint("data_file")
    return entries, columns, rows


def _discard(fs: AbstractFileSystem, final: str, written: list[str]) -> None:
    """Best effort: remove a failed write's files (and its folder on a local disk, if now empty)."""
    for path in written:
        try:
            fs.rm_file(path)
        except OSError:
            pass
    if is_local(fs):
        try:
            os.rmdir(final)
        except OSError:
            pass


def _publish(fs: AbstractFileSystem, final: str, manifest: Manifest) -> None:
    """Publish ``manifest`` as the next version; a version taken by another writer is retried as the next."""
    for _ in range(PUBLISH_ATTEMPTS):
        manifest.version = max(_versions(fs, final), default=0) + 1
        target = f"{final}/{MANIFESTS}/{manifest.version:020d}.json"
        try:
            if is_local(fs):
                _create_local(target, manifest.to_json().encode())
            else:
                _create_remote(fs, target, manifest)
        except FileExistsError:
            log.info("version %s of %s was taken by another writer; retrying", manifest.version, final)
            time.sleep(0.01 + (uuid.uuid4().int % 50) / 1000)
            continue
        _checkpoint("published")
        return
    raise RuntimeError(
        f"could not publish a new version of {manifest.uri} after {PUBLISH_ATTEMPTS} attempts "
        "(other writers kept taking the next version number)"
    )


def _create_local(target: str, blob: bytes) -> None:
    """Exclusive, atomic create: a fully written temporary file is hard-linked to ``target``."""
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.tmp-{uuid.uuid4().hex}.json"
    with open(tmp, "xb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        _checkpoint("manifest_staged")
        try:
            os.link(tmp, target)  # fails with FileExistsError if another writer has this version
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links: exclusive create, then write
            with open(target, "xb") as out:
                out.write(blob)
                out.flush()
                os.fsync(out.fileno())
    finally:
        os.unlink(tmp)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _create_remote(fs: AbstractFileSystem, target: str, manifest: Manifest) -> None:
    """Conditional create on an object store; read back, so a store that ignores the condition
    (some emulators) still cannot make a writer believe it published a version it lost."""
    _checkpoint("manifest_staged")
    fs.pipe_file(target, manifest.to_json().encode(), mode="create")
    # The read-back must see the store, not the filesystem's listing cache: a reader sharing this
    # (cached) filesystem instance may have listed _manifests/ just before the create, and
    # s3fs would then answer "no such file" for a version that is published.
    for attempt in range(6):
        fs.invalidate_cache(target.rsplit("/", 1)[0])
        try:
            stored = Manifest.from_json(fs.cat_file(target))
            break
        except FileNotFoundError:
            if attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    if stored.commit != manifest.commit:
        raise FileExistsError(target)


def _versions(fs: AbstractFileSystem, part: str) -> list[int]:
    """Version numbers present in a partition, oldest first (0: an old-layout ``_manifest.json``)."""
    folder = f"{part}/{MANIFESTS}"
    fs.invalidate_cache(folder)
    fs.invalidate_cache(part)
    found: list[int] = []
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        names = []
    for name in names:
        if match := _VERSION_FILE.match(str(name).rstrip("/").rsplit("/", 1)[-1]):
            found.append(int(match.group(1)))
    if not found and fs.exists(f"{part}/{MANIFEST}"):
        found.append(0)
    return sorted(found)


def versions(uri: str, storage_options: dict[str, Any] | None = None) -> list[int]:
    """The partition's published version numbers, oldest first (empty when it was never written)."""
    fs, path = filesystem(uri, storage_options)
    return _versions(fs, path.rstrip("/"))


def _load(fs: AbstractFileSystem, part: str, version: int) -> Manifest:
    name = MANIFEST if version == 0 else f"{MANIFESTS}/{version:020d}.json"
    return Manifest.from_json(fs.cat_file(f"{part}/{name}"))


def read_manifest(
    uri: str, storage_options: dict[str, Any] | None = None, *, version: int | None = None
) -> Manifest:
    """The partition's newest complete version, or exactly ``version``.

    A partition with no manifest is absent (or its first write is still running or failed).
    """
    fs, path = filesystem(uri, storage_options)
    part = path.rstrip("/")
    if version is not None:
        try:
            return _load(fs, part, version)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{uri} has no version {version}: never written, or collected after its retention"
            ) from None
    for number in reversed(_versions(fs, part)):
        try:
            return _load(fs, part, number)
        except FileNotFoundError:
            continue  # collected between listing and reading: an older one cannot be newer
        except (ValueError, TypeError, KeyError) as exc:  # torn write on a store without links
            log.warning("skipping unreadable manifest version %s of %s: %s", number, uri, exc)
    raise FileNotFoundError(
        f"no complete partition at {uri} (no manifest in {MANIFESTS}/); run the step that writes it first"
    )


def _entry(manifest: Manifest, name: str, uri: str) -> FileEntry:
    entry = next((f for f in manifest.files if f.name == name), None)
    if entry is None:
        raise FileNotFoundError(
            f"partition {uri} (version {manifest.version}) has no {name} "
            f"(has: {[f.name for f in manifest.files]})"
        )
    return entry


def _read_entry(fs: AbstractFileSystem, part: str, uri: str, entry: FileEntry, verify: bool) -> bytes:
    blob = fs.cat_file(f"{part}/{entry.path}")
    if verify and hashlib.sha256(blob).hexdigest() != entry.sha256:
        raise ValueError(
            f"{uri}/{entry.path} does not match its manifest sha256; the partition was modified after it was written"
        )
    return bytes(blob)


def read_frame(
    uri: str,
    name: str = "data",
    storage_options: dict[str, Any] | None = None,
    verify: bool = True,
    *,
    version: int | None = None,
) -> pd.DataFrame:
    """Read ``<name>.parquet`` of the newest version (or ``version``), checking its sha256."""
    import pandas as pd

    manifest = read_manifest(uri, storage_options, version=version)
    entry = _entry(manifest, f"{name}.parquet", uri)
    fs, path = filesystem(uri, storage_options)
    return pd.read_parquet(io.BytesIO(_read_entry(fs, path.rstrip("/"), uri, entry, verify)))


def read_stage(
    root: str,
    pipeline: str,
    stage: str,
    name: str = "data",
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every day of a stage (``<root>/<pipeline>/<stage>/ds=*``), each from its newest version, oldest day first.

    The way to read a history folder: a plain glob of ``*.parquet`` also reads the files of
    superseded versions (a re-run or backfill of a day adds a version, it never overwrites), so it
    counts such days twice. A day whose first write has not published is left out.
    """
    import pandas as pd

    fs, base = filesystem(join(root, pipeline, stage), storage_options)
    frames = []
    for path in _children(fs, base.rstrip("/")):
        day = path.rsplit("/", 1)[-1]
        if not day.startswith("ds="):
            continue
        try:
            frames.append(read_frame(join(root, pipeline, stage, day), name, storage_options))
        except FileNotFoundError:
            continue
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_file(uri: str, storage_options: dict[str, Any] | None = None) -> bytes:
    """Bytes at ``uri``; ``<partition>/<name>`` (e.g. ``result.html``) reads that file of the newest version."""
    fs, path = filesystem(uri, storage_options)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        part, _, name = path.rstrip("/").rpartition("/")
        try:
            manifest = read_manifest(uri.rstrip("/").rpartition("/")[0], storage_options)
        except FileNotFoundError:
            raise FileNotFoundError(uri) from None
        return _read_entry(fs, part, uri, _entry(manifest, name, uri), verify=True)


def collect_garbage(
    root: str,
    pipeline: str,
    *,
    keep_versions: int = 3,
    retention: timedelta = timedelta(days=7),
    now: datetime | None = None,
    dry_run: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> GarbageReport:
    """Remove what no reader can need any more from every partition of ``pipeline`` under ``root``.

    * a manifest that is not among the newest ``keep_versions`` (at least 1: the newest is never
      removed) and was superseded (its successor created) more than ``retention`` ago;
    * a data file no kept manifest lists, older than ``retention`` (a superseded version's files,
      or a killed writer's);
    * a temporary file or folder (``.tmp-*``) older than ``retention``.

    So a version stays readable by number for at least ``retention`` after a newer one replaced
    it: lineage (``mlops.raw_manifest_version``) stays valid that long. ``retention`` must also be
    longer than any write takes, or a running writer's files could be collected.
    """
    now = now or datetime.now(UTC)
    cutoff = (now if now.tzinfo else now.replace(tzinfo=UTC)) - retention
    report = GarbageReport(dry_run=dry_run)
    fs, base = filesystem(join(root, pipeline), storage_options)
    fs.invalidate_cache(base)
    stages = list(_children(fs, base))
    while stages:  # stages nest (reports/drift): walk down to the ds= folders
        stage = stages.pop()
        for path in _children(fs, stage):
            name = path.rsplit("/", 1)[-1]
            if name.startswith(".tmp-") and _modified(fs, path) < cutoff:
                report.temporary.append(path)
            elif name.startswith("ds="):
                _collect_partition(fs, path, max(keep_versions, 1), cutoff, report)
            elif stage.count("/") - base.count("/") < 3 and fs.isdir(path):
                stages.append(path)
    if not dry_run:
        for path in report.temporary:
            fs.rm(path, recursive=True)
        for path in report.files + report.manifests:  # manifests last: a crash leaves them valid
            fs.rm_file(path)
    return report


def _children(fs: AbstractFileSystem, path: str) -> list[str]:
    try:
        return sorted(str(p).rstrip("/") for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []


def _modified(fs: AbstractFileSystem, path: str) -> datetime:
    try:
        stamp = fs.modified(path)
    except (OSError, NotImplementedError, KeyError):  # a prefix with no object of its own
        return datetime.max.replace(tzinfo=UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _created(fs: AbstractFileSystem, part: str, manifest: Manifest) -> datetime:
    try:
        stamp = datetime.fromisoformat(manifest.created_at)
    except ValueError:
        return _modified(fs, manifest.manifest_uri)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _collect_partition(
    fs: AbstractFileSystem, part: str, keep: int, cutoff: datetime, report: GarbageReport
) -> None:
    numbers = _versions(fs, part)
    if fs.exists(f"{part}/{MANIFEST}") and 0 not in numbers:
        numbers.insert(0, 0)
    manifests: dict[int, Manifest] = {}
    for number in numbers:
        try:
            manifests[number] = _load(fs, part, number)
        except (OSError, ValueError, TypeError, KeyError):
            continue  # unreadable: never the basis of a removal
    ordered = sorted(manifests, reverse=True)
    kept = set(ordered[:keep])
    for newer, older in zip(ordered, ordered[1:], strict=False):
        if older not in kept and _created(fs, part, manifests[newer]) >= cutoff:
            kept.add(older)  # superseded less than ``retention`` ago: lineage may still read it
    report.kept_versions[part] = sorted(kept)
    referenced = {e.path for n in kept for e in manifests[n].files}
    for number in set(manifests) - kept:
        report.manifests.append(f"{part}/{MANIFEST if number == 0 else f'{MANIFESTS}/{number:020d}.json'}")
    for path in fs.find(part):
        rel = str(path)[len(part) + 1 :]
        if rel == MANIFEST or (
            rel.startswith(f"{MANIFESTS}/") and _VERSION_FILE.match(rel[len(MANIFESTS) + 1 :])
        ):
            continue
        if rel in referenced or _modified(fs, str(path)) >= cutoff:
            continue
        (report.temporary if rel.rsplit("/", 1)[-1].startswith(".tmp-") else report.files).append(str(path))


REJECTED_COLUMNS = ("file", "line", "reason", "raw")
_EXAMPLES = 5
_TRUE = frozenset({"True", "TRUE", "true"})
_FALSE = frozenset({"False", "FALSE", "false"})
NUMERIC_MIN_SHARE = 0.8  # a column is numeric when >= 80% of its non-empty first-chunk values are numbers


@dataclass
class _Rejects:
    """Malformed rows met while reading: ``(file, line, reason, raw)``."""

    rows: list[tuple[str, int, str, str]] = field(default_factory=list)
    # column mode: lines whose date is unreadable (blank, another format), so no window can
    # claim or exclude them; judged against the rows of the whole file, as they may be anywhere
    undated: set[tuple[str, int]] = field(default_factory=set)
    scanned: int = 0  # column mode: the rows read from the file(s), in the window or not

    def clear(self) -> None:
        self.rows.clear()
        self.undated.clear()
        self.scanned = 0


def read_source(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``source`` selected by the logical date ``ds`` (see :class:`~mlops_core.spec.PartitionSpec`).

    Memory follows the selected rows, not the source: ``column`` mode streams the file (parquet
    in record batches, with the date filter pushed down to row groups when the column is typed;
    CSV in chunks) and keeps only the window's rows; ``files`` mode reads only the window's files.
    ``columns`` limits the columns read (the partition column is still used to select rows).

    CSV is read strictly (:func:`read_source_strict`); malformed rows within
    ``source.max_rejected_share`` are left out of the frame (and logged), never coerced.
    """
    frame, rejected = read_source_strict(source, ds, storage_options, lookback_days, columns=columns)
    if len(rejected):
        log.warning("left out %d malformed row(s) of %s", len(rejected), redact(expand(source.uri)))
    return frame


def read_source_strict(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, rejected)``: :func:`read_source`'s rows and the malformed CSV rows set aside.

    CSV rows must have the header's field count, and a numeric column (decided on the first
    chunk) must hold numbers or nothing. Malformed rows (in column mode: those not known to fall
    outside the window) above ``source.max_rejected_share`` of the rows raise
    :class:`SourceDataError` naming the lines; within it they come back as ``rejected``
    (``file, line, reason, raw``: the row's text, untouched). An empty or header-only file is
    :class:`SourceNotReady` (its writer may still be writing); a file that is not parquet is a
    :class:`SourceDataError` naming it.
    """
    frame, rejected, _ = read_source_with_lineage(source, ds, storage_options, lookback_days, columns=columns)
    return frame, rejected


def read_source_with_lineage(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """:func:`read_source_strict`'s ``(rows, rejected)`` and the source's lineage for the manifest.

    A plain source's lineage is ``{}``. A DVC source (``source.dvc``) is fetched first
    (:func:`mlops_core.data.dvc_source.fetch`: the revision resolved to its full commit sha, the window's
    files checked against their DVC md5s) and then read like a local file; its lineage is
    ``{"dvc": {"repo", "rev", "commit", "remote", "files": [{"path", "md5", "size", "hash"}]}}``.
    """
    day = _as_date(ds)
    lookback = lookback_days or source.partition.lookback_days
    log.info("reading %s: %s", _shown(source.uri), window_text(source, day, lookback))
    if source.dvc is None:
        frame, rejected = _read_strict(
            source, day, lookback, columns, lambda uri: no_link(*filesystem(uri, storage_options))
        )
        return frame, rejected, {}
    from mlops_core.data import dvc_source

    uris = _window_uris(source, day, lookback)
    with dvc_source.fetch(source, uris, required=source.partition.mode != "files") as fetched:
        frame, rejected = _read_strict(source, day, lookback, columns, fetched.locate)
        return frame, rejected, {"dvc": fetched.lineage()}


def no_link(fs: AbstractFileSystem, path: str) -> tuple[AbstractFileSystem, str]:
    """``(fs, path)`` of a source, refused when it is local and reached through a symbolic link.

    A link in the landing zone (``ln -s /etc/passwd <landing>/demo/data.csv``) would hand the
    reader any file the worker can read, whatever the URI checks said. Under a source root (the
    landing zone, a local ``source_roots`` entry of the active profile) no part of the path below
    the root may be a link and the resolved file must stay under the resolved root; elsewhere
    (outside every root, which the operators' profile check refuses anyway) the file itself may
    not be a link.
    """
    if not is_local(fs):
        return fs, path
    from mlops_core.spec import profiles as clouds

    profile = clouds.active()
    roots = [landing_root(), *(profile.source_roots if profile else ())]
    target = os.path.normpath(path)
    shown = redact(target)
    fix = "copy the file into the landing zone (symbolic links are not followed: one may point anywhere)"
    for root in (
        os.path.normpath(r.removeprefix("file://")) for r in roots if r.startswith(("/", "file://"))
    ):
        if not target.startswith(root.rstrip("/") + "/"):
            continue
        here = root
        for part in os.path.relpath(target, root).split(os.sep):
            here = os.path.join(here, part)
            if os.path.islink(here):
                raise SourceDataError(f"source {shown}: {redact(here)} is a symbolic link; {fix}")
        real, real_root = os.path.realpath(target), os.path.realpath(root)
        if not real.startswith(real_root.rstrip("/") + "/"):
            raise SourceDataError(f"source {shown} resolves outside its root {redact(root)}; {fix}")
        return fs, path
    if os.path.islink(target):
        raise SourceDataError(f"source {shown} is a symbolic link; {fix}")
    return fs, path


def window_text(source: SourceSpec, day: date, lookback: int) -> str:
    """The exact time range a read for ``day`` covers, as the ingest log states it."""
    part = source.partition
    first = day - timedelta(days=lookback - 1)
    if part.mode == "column":
        return (
            f"rows whose {part.column!r} falls on {first} through {day} (UTC days; from {first}T00:00 "
            f"to before {day + timedelta(days=1)}T00:00), mode=column, lookback_days={lookback}, ds={day}"
        )
    if part.mode == "files":
        return f"the daily files for {first} through {day}, mode=files, lookback_days={lookback}, ds={day}"
    return f"the whole source, mode=snapshot (no date filter), ds={day}"


def _window_uris(source: SourceSpec, day: date, lookback: int) -> list[str]:
    """The URIs a run reads: one per day of the window in ``files`` mode, else the source's."""
    if source.partition.mode != "files":
        return [source.uri]
    return [source.uri.replace("{ds}", (day - timedelta(days=i)).isoformat()) for i in range(lookback)]


def _read_strict(
    source: SourceSpec,
    day: date,
    lookback: int,
    columns: Sequence[str] | None,
    locate: Callable[[str], tuple[AbstractFileSystem, str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`read_source_strict` on the filesystems ``locate`` gives for the source's URIs."""
    import pandas as pd

    part = source.partition
    wanted = list(columns) if columns else None
    rejects = _Rejects()
    if part.mode == "files":
        uris = _window_uris(source, day, lookback)
        fs, _ = locate(uris[0])
        found = sorted((locate(u)[1], u) for u in uris)
        found = [(p, u) for p, u in found if fs.exists(p)]
        if not found:
            raise SourceNotReady(
                f"no source file for ds={day} in the last {lookback} day(s): looked for {redact(uris[0])} and earlier"
            )

        def read(fast: bool) -> pd.DataFrame:
            return _concat(
                c
                for p, u in found
                for c in _chunks(fs, p, source.format, wanted, shown=_shown(u), rejects=rejects, fast=fast)
            )

    else:
        fs, path = locate(source.uri)
        if not fs.exists(path):
            raise SourceNotReady(
                f"source {redact(expand(source.uri))} does not exist; check source.uri and its connection"
            )

        def read(fast: bool) -> pd.DataFrame:
            if part.mode == "column":
                return _read_window(
                    fs,
                    path,
                    source.format,
                    str(part.column),
                    day,
                    lookback,
                    source.uri,
                    wanted,
                    rejects=rejects,
                    fast=fast,
                )
            return _concat(
                _chunks(fs, path, source.format, wanted, shown=_shown(source.uri), rejects=rejects, fast=fast)
            )

    frame = _fast_or_strict(read, rejects, source)
    rejected = pd.DataFrame(rejects.rows, columns=list(REJECTED_COLUMNS))
    rejected["line"] = rejected["line"].astype("int64")
    rejected = rejected.sort_values(["file", "line"], kind="stable", ignore_index=True)
    if len(rejected):
        undated = len(rejects.undated)
        placed = len(rejected) - undated
        _check_share(source, rejected, len(frame) + placed, undated=undated, scanned=rejects.scanned)
    if frame.empty:
        raise SourceNotReady(
            f"source {redact(expand(source.uri))} has no rows for ds={day} (mode={part.mode}, lookback_days={lookback})"
            + (
                f"; {len(rejects.undated)} row(s) with an unreadable date were quarantined"
                if rejects.undated
                else ""
            )
        )
    return frame, rejected


class _NotClean(Exception):  # noqa: N818 - a signal, not an error: read the file strictly
    """The fast CSV path met something only the strict reader may judge (it re-reads from the start)."""


def _fast_or_strict(
    read: Callable[[bool], pd.DataFrame], rejects: _Rejects, source: SourceSpec
) -> pd.DataFrame:
    """Read clean CSV with Arrow's tokenizer; anything irregular goes through the strict reader.

    The fast path gives exactly the frame the strict one would (same chunks, same numeric
    decision, same nulls and booleans: ``tests/unit/test_strict_reading.py`` compares both), but
    never judges a row: a field count off, a non-number in a numeric column, a spelled-out NaN,
    an odd header... and the whole read starts again strictly, which names and quarantines.
    """
    if source.format != "csv":
        return read(False)
    try:
        return read(True)
    except _NotClean as why:
        log.info("source %s read strictly: %s", _shown(source.uri), why)
        rejects.clear()
        return read(False)


def _shown(uri: str) -> str:
    """A source URI as messages show it: variables expanded, credentials redacted."""
    return redact(expand(uri))


def _check_share(
    source: SourceSpec, rejected: pd.DataFrame, total: int, *, undated: int = 0, scanned: int = 0
) -> None:
    """Refuse when malformed rows exceed ``source.max_rejected_share``.

    ``total``: the rows the read selected plus the malformed ones it placed there. ``undated``
    rows (column mode: their date is unreadable, so they may belong to any day) are judged
    against the ``scanned`` rows of the whole file instead: 2 % of a year's dates written
    otherwise is 2 %, on every day's read.
    """
    bad = len(rejected)
    placed = bad - undated
    share = placed / total if total else (1.0 if placed else 0.0)
    if undated:
        share = max(share, undated / scanned if scanned else 1.0)
    if share <= source.max_rejected_share:
        return
    files = sorted(set(rejected["file"]))
    examples = "; ".join(
        (f"{f} " if len(files) > 1 else "") + f"line {n}: {r}"
        for f, n, r in rejected[["file", "line", "reason"]].head(_EXAMPLES).itertuples(index=False)
    )
    counted = (
        f"{placed} of the {total} rows of the window and {undated} with an unreadable date, "
        f"{undated / scanned if scanned else 1.0:.2%} of the {scanned} rows read (accepted dates: {ACCEPTED})"
        if undated
        else f"of {total}"
    )
    raise SourceDataError(
        f"source {', '.join(files)} has {bad} malformed row(s) {counted} ({share:.2%}; "
        f"source.max_rejected_share is {source.max_rejected_share:g}): {examples}"
        + ("; ..." if bad > _EXAMPLES else "")
        + ". Fix the file, or set source.max_rejected_share to quarantine up to that share of rows"
        " to the 'rejected' partition"
    )


def _chunks(
    fs: AbstractFileSystem,
    path: str,
    fmt: str,
    columns: list[str] | None = None,
    window: tuple[str, date, int] | None = None,
    *,
    shown: str | None = None,
    rejects: _Rejects | None = None,
    fast: bool = False,
) -> Iterator[pd.DataFrame]:
    """A source file as DataFrames, in bounded pieces (CSV chunks / parquet record batches).

    ``shown`` names the file in messages; ``rejects`` collects malformed CSV rows (without it,
    any malformed row raises). ``fast``: CSV through Arrow's tokenizer, raising
    :class:`_NotClean` at the first irregularity (see :func:`_fast_or_strict`).
    """
    shown = shown or path
    _check_not_empty(fs, path, shown)
    if fmt == "csv" and fast:
        yield from _csv_chunks_fast(fs, path, columns, CSV_CHUNK_ROWS)
    elif fmt == "csv":
        yield from _csv_chunks(fs, path, columns, CSV_CHUNK_ROWS, shown=shown, rejects=rejects, window=window)
    else:
        with _parquet_errors(shown):
            yield from _parquet_chunks(fs, path, columns, window)


def _check_not_empty(fs: AbstractFileSystem, path: str, shown: str) -> None:
    try:
        size = fs.size(path)
    except (OSError, NotImplementedError):  # a store that cannot say: the read finds out
        return
    if size == 0:
        raise SourceNotReady(f"source {shown} is empty (0 bytes)")


@contextmanager
def _parquet_errors(shown: str) -> Iterator[None]:
    """Arrow's errors opening or scanning a file as one message naming it."""
    import pyarrow as pa

    try:
        yield
    except pa.ArrowException as err:
        text = str(err).splitlines()[0] if str(err) else ""
        raise SourceDataError(
            f"source {shown} is not a parquet file, or a damaged one ({type(err).__name__}: {text[:200]})"
        ) from err


def _csv_chunks(  # noqa: C901 - one streaming pass: shape, line numbers, truncation
    fs: AbstractFileSystem,
    path: str,
    columns: list[str] | None,
    chunk_rows: int | None,
    *,
    shown: str | None = None,
    rejects: _Rejects | None = None,
    window: tuple[str, date, int] | None = None,
) -> Iterator[pd.DataFrame]:
    """CSV read strictly, in chunks of ``chunk_rows`` rows (header = line 1).

    Rows whose field count is not the header's (a truncated last line included) and rows with a
    non-number in a numeric column go to ``rejects`` with their line and text; a column is
    numeric when, in its first chunk with values, at least :data:`NUMERIC_MIN_SHARE` of its
    non-empty values are numbers. Empty fields are nulls; nothing else is (``n/a`` in a text
    column stays text). In column mode (``window``) a malformed row whose date field parses to a
    day outside the window is not counted.
    """
    import csv

    shown = shown or path
    sink = rejects if rejects is not None else _Rejects()
    limit = chunk_rows or CSV_CHUNK_ROWS
    raw_lines: list[str] = []

    def tracked(text: Iterable[str]) -> Iterator[str]:
        for line in text:
            raw_lines.append(line)
            yield line

    with fs.open(path, "rb") as fh, io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(tracked(text))
        try:
            header = next(reader)
        except StopIteration:
            raise SourceNotReady(f"source {shown} is empty (no header)") from None
        except csv.Error as err:
            raise SourceDataError(f"source {shown}: line 1 (the header) is unreadable: {err}") from err
        raw_lines.clear()
        names = [n if n else f"Unnamed: {i}" for i, n in enumerate(header)]
        width = len(names)
        if columns is None:
            picked = list(range(width))
        else:
            picked = [names.index(c) for c in columns if c in names]
            missing = [c for c in columns if c not in names]
            if missing and (window is None or missing != [window[0]]):
                raise SourceDataError(f"source {shown} has no column(s) {missing}; columns: {names[:20]}")
        date_at = names.index(window[0]) if window is not None and window[0] in names else None
        numeric: dict[int, bool | None] = dict.fromkeys(picked)
        state = {"line": 1, "rows": 0, "bad": 0}
        last_bad: list[Any] = []

        def chunks() -> Iterator[tuple[list[list[str]], list[int]]]:
            rows: list[list[str]] = []
            lines: list[int] = []
            while True:
                start = state["line"] + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    state["line"] = reader.line_num
                    state["rows"] += 1
                    _reject(sink, shown, start, f"unreadable ({err})", "".join(raw_lines), None, window)
                    raw_lines.clear()
                    continue
                state["line"] = reader.line_num
                if not row and len(raw_lines) == 1 and not raw_lines[0].strip("\r\n"):
                    raw_lines.clear()  # a blank line: pandas skips it too
                    continue
                state["rows"] += 1
                if len(row) != width:
                    raw = "".join(raw_lines)
                    reason = f"{len(row)} fields, header has {width}"
                    last_bad[:] = [raw, start, row]
                    _reject(
                        sink,
                        shown,
                        start,
                        reason,
                        raw,
                        row[date_at] if date_at is not None and date_at < len(row) else None,
                        window,
                    )
                else:
                    last_bad[:] = []
                    rows.append(row)
                    lines.append(start)
                    if len(rows) >= limit:
                        yield rows, lines
                        rows, lines = [], []
                raw_lines.clear()
            # a short last row with no newline after it was cut off while being written
            if last_bad and not last_bad[0].endswith(("\n", "\r")) and len(last_bad[2]) < width and sink.rows:
                f, n, _, raw = sink.rows[-1]
                if n == last_bad[1]:
                    sink.rows[-1] = (f, n, f"truncated ({len(last_bad[2])} of {width} fields)", raw)
            if rows:
                yield rows, lines

        for rows, lines in chunks():
            yield _typed_chunk(rows, lines, names, picked, numeric, sink, shown, date_at, window)
        if state["rows"] == 0:
            raise SourceNotReady(f"source {shown} has a header but no rows")
        if rejects is None and sink.rows:
            f, n, reason, _ = sink.rows[0]
            raise SourceDataError(f"source {shown} line {n}: {reason}")


def _csv_header(fh: Any) -> list[str] | None:
    """The header's names (``Unnamed: i`` for empty ones), or None when it is not one plain line."""
    import csv

    line = fh.readline()
    if not line or line.count(b'"') % 2 or b"\r" in line[:-2]:
        return None  # a quoted name spanning lines, a lone CR: the strict reader decides
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    header = next(csv.reader([text.rstrip("\r\n")]), None)
    if not header:
        return None
    return [n if n else f"Unnamed: {i}" for i, n in enumerate(header)]


def _csv_chunks_fast(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Clean CSV through Arrow's tokenizer, every field read as text, in the strict reader's chunks.

    Chunks of ``chunk_rows`` rows, typed by :func:`_typed_arrow_chunk` exactly as
    :func:`_typed_chunk` types them; raises :class:`_NotClean` instead of judging anything.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with fs.open(path, "rb") as fh:
        names = _csv_header(fh)
        if names is None:
            raise _NotClean("the header is not one plain line")
        width = len(names)
        picked = list(range(width)) if columns is None else [names.index(c) for c in columns if c in names]
        if columns is not None and len(picked) != len(columns):
            raise _NotClean("a requested column is missing")
        slots = [f"f{i}" for i in range(width)]
        numeric: dict[int, bool | None] = dict.fromkeys(picked)
        pending: list[Any] = []
        held = 0
        rows = 0
        try:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=slots, block_size=1 << 18, use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(slots, pa.string()),
                    include_columns=[slots[i] for i in picked],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    null_values=[],
                ),
                # freed blocks go back at once (Arrow's default pool keeps them: benchmarks/memory.py)
                memory_pool=pa.system_memory_pool(),
            )
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield _typed_arrow_chunk(table.slice(0, chunk_rows), names, picked, numeric)
                    rest = table.slice(chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
                    rows += chunk_rows
            if held:
                rows += held
                yield _typed_arrow_chunk(pa.Table.from_batches(pending), names, picked, numeric)
        except pa.ArrowInvalid as err:  # a row of another width, bad UTF-8, an open quote
            raise _NotClean(str(err).splitlines()[0][:200]) from None
        if rows == 0:
            raise _NotClean("no rows")


def _typed_arrow_chunk(
    table: pa.Table, names: list[str], picked: list[int], numeric: dict[int, bool | None]
) -> pd.DataFrame:
    """:func:`_typed_chunk` for one clean chunk of Arrow text columns; :class:`_NotClean` where it would reject."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for slot, i in enumerate(picked):
        col = table.column(slot).combine_chunks()
        empty = pc.equal(col, "")
        n_empty = pc.sum(empty).as_py() or 0
        if numeric[i] is None and n_empty < len(col):  # the first chunk with values decides
            raw = col.to_numpy(zero_copy_only=False)
            filled = raw != ""
            numeric[i] = bool(np.mean(~np.isnan(_to_numbers(raw)[filled])) >= NUMERIC_MIN_SHARE)
        if numeric[i]:
            out[names[i]] = _arrow_numbers(col, empty, n_empty)
        elif numeric[i] is None:  # empty so far: all nulls, as pandas reads an empty column
            out[names[i]] = np.full(len(col), np.nan)
        else:
            out[names[i]] = _text(col.to_numpy(zero_copy_only=False), empty.to_numpy(zero_copy_only=False))
        del col
    return pd.DataFrame(out, columns=[names[i] for i in picked])


_INTEGER = r"^[+-]?[0-9]+$"


def _arrow_numbers(col: pa.Array, empty: pa.Array, n_empty: int) -> Any:
    """A numeric column's numbers as :func:`_to_numbers` gives them: int64 when every value is an
    integer and none is empty, float64 otherwise; anything else is for the strict reader."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if n_empty == 0 and pc.all(pc.match_substring_regex(col, _INTEGER)).as_py():
        try:
            return pc.cast(col, pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # "+5", or beyond int64 (pandas: uint64 or float)
            raise _NotClean("an integer Arrow does not read as int64") from None
    try:
        values = pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), col), pa.float64())
    except pa.ArrowInvalid:
        raise _NotClean("a value that is not a number in a numeric column") from None
    if pc.any(pc.or_(pc.is_nan(values), pc.is_inf(values))).as_py():
        raise _NotClean("NaN or infinity (spelled out, or an overflow): the strict reader judges it")
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=float)


def _reject(
    sink: _Rejects,
    shown: str,
    line: int,
    reason: str,
    raw: str,
    day_text: str | None,
    window: tuple[str, date, int] | None,
) -> None:
    """Record a malformed row, unless (column mode) its date says it is outside the window."""
    if window is not None:
        import pandas as pd

        from mlops_core.data.dates import parse_days

        got = parse_days([day_text or ""]).iloc[0]
        if pd.isna(got):
            sink.undated.add((shown, line))
        else:
            end = pd.Timestamp(window[1])
            if not (end - pd.Timedelta(days=window[2]) < got <= end):
                return
    sink.rows.append((shown, line, reason, raw))


def _to_numbers(values: Any) -> Any:
    """Numbers of a text column (not a number -> NaN); ``nan`` spelled out is not a number.

    pandas decides what is a number (and int64 vs float64), but its parser is not correctly
    rounded (about 1 in 4 seventeen-digit decimals comes back one ulp off), so the floats it
    accepted are parsed again with Python's ``float``: the nearest double, as Arrow's parser gives
    it on the fast path (:func:`_arrow_numbers`), so a file reads to the same bytes either way.
    """
    import numpy as np
    import pandas as pd

    nums = np.asarray(pd.to_numeric(values, errors="coerce"))
    if nums.dtype.kind == "f":
        ok = ~np.isnan(nums)
        if ok.any():
            nums = nums.copy()
            nums[ok] = [float(v) for v in np.asarray(values, dtype=object)[ok]]
    return nums


def _typed_chunk(  # noqa: C901 - schema decision, number check, quarantine
    rows: list[list[str]],
    lines: list[int],
    names: list[str],
    picked: list[int],
    numeric: dict[int, bool | None],
    sink: _Rejects,
    shown: str,
    date_at: int | None,
    window: tuple[str, date, int] | None,
) -> pd.DataFrame:
    """Well-shaped rows as a typed frame; rows with a non-number in a numeric column go to ``sink``."""
    import numpy as np
    import pandas as pd

    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    raws = {i: np.array(cols[i], dtype=object) for i in picked}
    del cols
    empties = {i: raws[i] == "" for i in picked}
    parsed: dict[int, Any] = {}
    bad = np.zeros(len(rows), dtype=bool)
    reasons: dict[int, str] = {}
    for i in picked:
        raw, empty = raws[i], empties[i]
        if numeric[i] is None and not empty.all():
            nums = _to_numbers(raw)
            filled = ~empty
            numeric[i] = bool(np.mean(~np.isnan(nums[filled])) >= NUMERIC_MIN_SHARE)
            parsed[i] = nums
        if numeric[i]:
            nums = parsed[i] if i in parsed else _to_numbers(raw)
            parsed[i] = nums
            wrong = np.isnan(nums) & ~empty
            if wrong.any():
                for j in np.flatnonzero(wrong).tolist():
                    reasons.setdefault(j, f"column {names[i]!r} = {raw[j]!r} is not a number")
                bad |= wrong
    if window is not None and date_at is not None:
        bad |= _undated(rows, lines, date_at, names[date_at], bad, sink, shown)
    if bad.any():
        for j in sorted(reasons):
            day_text = rows[j][date_at] if date_at is not None else None
            _reject(sink, shown, lines[j], reasons[j], _as_line(rows[j]), day_text, window)
        keep = ~bad
        raws = {i: r[keep] for i, r in raws.items()}
        empties = {i: e[keep] for i, e in empties.items()}
        parsed = {i: _to_numbers(raws[i]) for i in parsed if numeric[i]}  # ints stay ints
    out: dict[str, Any] = {}
    for i in picked:
        if numeric[i]:
            out[names[i]] = parsed[i] if i in parsed else _to_numbers(raws[i])
        elif numeric[i] is None:  # empty so far: all nulls, as pandas reads an empty column
            out[names[i]] = np.full(len(raws[i]), np.nan)
        else:
            out[names[i]] = _text(raws[i], empties[i])
    return pd.DataFrame(out, columns=[names[i] for i in picked])


def _undated(
    rows: list[list[str]], lines: list[int], at: int, name: str, bad: Any, sink: _Rejects, shown: str
) -> Any:
    """Rows (not already ``bad``) whose date column is not an accepted date: quarantined as undated."""
    import numpy as np

    from mlops_core.data.dates import describe_bad, parse_days

    texts = [r[at] for r in rows]
    undated = parse_days(texts).isna().to_numpy() & ~bad
    for j in np.flatnonzero(undated).tolist():
        sink.rows.append((shown, lines[j], f"column {name!r} {describe_bad(texts[j])}", _as_line(rows[j])))
        sink.undated.add((shown, lines[j]))
    return undated


def _as_line(row: list[str]) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def _text(raw: Any, empty: Any) -> Any:
    """A text column: empty -> null; True/False spellings -> bool, as pandas reads them."""
    import numpy as np

    filled = raw[~empty]
    if len(filled) and filled[0] in _TRUE | _FALSE:
        seen = set(filled.tolist())
        if seen <= _TRUE | _FALSE:
            flags = np.array([v in _TRUE for v in raw], dtype=bool)
            if not empty.any():
                return flags
            return np.where(empty, np.nan, flags.astype(object))
    if empty.any():
        raw = raw.copy()
        raw[empty] = np.nan
    return raw


def _parquet_chunks(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, window: tuple[str, date, int] | None
) -> Iterator[pd.DataFrame]:
    """Parquet as record batches; with a ``window`` on a typed date column, row groups outside it are skipped."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(path, format="parquet", filesystem=None if is_local(fs) else fs)
    if window is not None and window[0] not in dataset.schema.names:
        yield dataset.schema.empty_table().to_pandas()  # _select_window names what is missing
        return
    expr = _window_filter(dataset.schema, window) if window is not None else None
    for batch in dataset.scanner(columns=columns, filter=expr, **_scan_options()).to_batches():
        yield batch.to_pandas()


def _scan_options() -> dict[str, Any]:
    """Scanner settings for bounded memory: one batch read ahead, and no pre-buffering of whole
    column chunks (pages are decoded as batches are consumed, so peak memory follows the batch
    and the kept rows, not the row group)."""
    import pyarrow.dataset as pads

    return {
        "batch_size": PARQUET_BATCH_ROWS,
        "use_threads": False,
        "batch_readahead": 1,
        "fragment_readahead": 1,
        "fragment_scan_options": pads.ParquetFragmentScanOptions(
            pre_buffer=False, use_buffered_stream=True, buffer_size=1 << 20
        ),
    }


def _parquet_exact_window(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, window: tuple[str, date, int]
) -> pd.DataFrame | None:
    """A typed date column's window read in Arrow and converted once (None: not applicable).

    The filter is exact (:func:`_window_filter`), so only the window's rows are decoded; the
    Arrow table is handed to pandas with ``self_destruct`` (its buffers are freed as columns are
    converted), so peak memory stays near one copy of the window's rows.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    dataset = pads.dataset(path, format="parquet", filesystem=None if is_local(fs) else fs)
    if window[0] not in dataset.schema.names:
        return None
    expr = _window_filter(dataset.schema, window)
    if expr is None:
        return None
    # the system allocator hands freed decode buffers back at once; Arrow's default pool keeps
    # them for reuse, which measured as ~2x the window's size of extra peak (benchmarks/memory.py)
    pool = pa.system_memory_pool()
    table = dataset.to_table(columns=columns, filter=expr, memory_pool=pool, **_scan_options())
    frame = table.to_pandas(self_destruct=True, split_blocks=True, memory_pool=pool)
    del table
    return frame


def _concat(pieces: Iterable[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    kept = [p for p in pieces if not p.empty]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _window_filter(schema: pa.Schema, window: tuple[str, date, int]) -> Any:
    """The window ``(day - lookback, day]`` as an Arrow filter on a typed column (rows, not just row groups).

    Exactly the days :func:`_select_window` keeps (it still makes the final cut): timestamps in
    ``[day - lookback + 1, day + 1)``, compared in UTC for zoned ones. A superset here would
    turn days of rows into pandas only to drop them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column, day, lookback = window
    kind = schema.field(column).type
    lo = datetime.combine(day - timedelta(days=lookback - 1), datetime.min.time())
    hi = datetime.combine(day + timedelta(days=1), datetime.min.time())
    if pa.types.is_timestamp(kind):
        tz = getattr(kind, "tz", None)
        bounds = [pa.scalar(b.replace(tzinfo=UTC) if tz else b, type=kind) for b in (lo, hi)]
    elif pa.types.is_date(kind):
        bounds = [pa.scalar(b.date(), type=kind) for b in (lo, hi)]
    else:
        return None  # strings etc.: parsed per batch, no pushdown
    field_ = pc.field(column)
    return (field_ >= bounds[0]) & (field_ < bounds[1])


def _read_window(
    fs: AbstractFileSystem,
    path: str,
    fmt: str,
    column: str,
    day: date,
    lookback: int,
    uri: str,
    columns: list[str] | None,
    *,
    rejects: _Rejects | None = None,
    fast: bool = False,
) -> pd.DataFrame:
    """The rows of ``(day - lookback, day]``, selected chunk by chunk (memory follows the window)."""

    read = None if columns is None else [*columns, *([column] if column not in columns else [])]
    shown = _shown(uri)
    if fmt == "parquet":
        _check_not_empty(fs, path, shown)
        with _parquet_errors(shown):
            exact = _parquet_exact_window(fs, path, read, (column, day, lookback))
        if exact is not None:
            return exact if columns is None or exact.empty else exact[list(columns)]
    sink = rejects if rejects is not None else _Rejects()
    pieces = _chunks(fs, path, fmt, read, (column, day, lookback), shown=shown, rejects=sink, fast=fast)

    def windowed() -> Iterator[pd.DataFrame]:
        seen = 0
        for chunk in pieces:
            undated: Callable[[pd.DataFrame, Any], None] | None = None
            if fmt == "csv" and fast:
                undated = _leave_fast_path
            elif fmt != "csv":
                undated = _undated_rows(sink, shown, column, seen)
            yield _select_window(chunk, column, day, lookback, uri, undated)
            seen += len(chunk)
        # the strict CSV reader leaves out the rows it quarantined; they were read all the same
        sink.scanned = seen + (len(sink.rows) if fmt == "csv" else 0)

    frame = _concat(windowed())
    return frame if columns is None or frame.empty else frame[list(columns)]


def _leave_fast_path(frame: pd.DataFrame, unreadable: Any) -> None:
    raise _NotClean(f"{int(unreadable.sum())} unreadable date(s): the strict reader quarantines them by line")


def _undated_rows(
    sink: _Rejects, shown: str, column: str, offset: int
) -> Callable[[pd.DataFrame, Any], None]:
    """Quarantine a parquet chunk's unreadable dates, numbered by row (1 = the file's first row)."""

    def record(frame: pd.DataFrame, unreadable: Any) -> None:
        import numpy as np

        from mlops_core.data.dates import describe_bad

        for j in np.flatnonzero(unreadable).tolist():
            row = [("" if v is None else str(v)) for v in frame.iloc[j].tolist()]
            sink.rows.append(
                (
                    shown,
                    offset + j + 1,
                    f"column {column!r} {describe_bad(frame[column].iloc[j])}",
                    _as_line(row),
                )
            )
            sink.undated.add((shown, offset + j + 1))

    return record


def _select_window(
    frame: pd.DataFrame,
    column: str,
    day: date,
    lookback: int,
    uri: str,
    undated: Callable[[pd.DataFrame, Any], None] | None = None,
) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` falls in ``(day - lookback, day]`` (:mod:`mlops_core.data.dates`).

    Each value is parsed on its own; ``undated`` is told which rows have no readable date (the
    caller quarantines them, or re-reads strictly); without it they are left out.
    """
    import pandas as pd

    from mlops_core.data.dates import parse_days

    if column not in frame.columns:
        raise SourceDataError(
            f"source {uri} has no column {column!r} (partition.column); columns: {list(frame.columns)[:20]}"
        )
    stamps = parse_days(frame[column])
    unreadable = stamps.isna().to_numpy()
    if undated is not None and unreadable.any():
        undated(frame, unreadable)
    end = pd.Timestamp(day)
    start = end - pd.Timedelta(days=lookback)
    keep = ((stamps > start) & (stamps <= end)).to_numpy()
    return frame.loc[keep].reset_index(drop=True)
