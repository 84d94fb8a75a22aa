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
4. :func:`~mlops_core.data.collector.collect_garbage` removes versions beyond the newest ``keep_versions`` once they have been
   superseded for longer than ``retention``, and files no kept manifest lists (a crashed writer's
   leftovers) once they are older than ``retention``. A version named in lineage (the
   ``mlops.raw_manifest_version`` tag) therefore stays readable for at least ``retention`` after
   it stopped being the newest (the collector is :mod:`mlops_core.data.collector`).

A partition written by the old layout (one ``_manifest.json`` and files under their plain names)
reads as version 0; the next write supersedes it and the collector removes it like any version.

URIs resolve to filesystems through :mod:`mlops_core.data.filesystems`. Reading a source for a
logical date is :mod:`mlops_core.data.sources`.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlops_core.data.filesystems import filesystem, is_local, join

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"  # the old layout's single manifest, read as version 0
MANIFESTS = "_manifests"
PUBLISH_ATTEMPTS = 50
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
    :func:`~mlops_core.data.collector.collect_garbage` removes them. A write that fails before its manifest is published
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


def _children(fs: AbstractFileSystem, path: str) -> list[str]:
    try:
        return sorted(str(p).rstrip("/") for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []
