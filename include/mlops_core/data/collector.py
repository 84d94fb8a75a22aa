"""The lake's collector: removes what no reader of a partition can need any more.

Step 4 of the commit protocol (:mod:`mlops_core.data.storage`): superseded versions beyond the
newest ``keep_versions`` once their retention has passed, files no kept manifest lists, and a
crashed writer's temporary files. Run by :mod:`mlops_core.maintenance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.data.filesystems import filesystem, join
from mlops_core.data.storage import _VERSION_FILE, MANIFEST, MANIFESTS, Manifest, _children, _load, _versions

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


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
