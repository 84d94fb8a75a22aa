"""Stop a lake writer at a named step of the commit protocol, from outside the product.

The fault tests (``tests/faults/test_lake_faults.py`` on a disk, ``tests/emulators/
test_lake_on_clouds.py`` on the object stores) ``kill -9`` a writer process at each step of
:func:`mlops_core.data.storage.write_partition`. The product has no hook for them: this wraps the
lake's real functions in that writer process, so it pauses exactly where the step is:

- ``data_file``: a data file was written (after the filesystem's ``pipe_file``; the manifest's
  conditional create on an object store is not a data file);
- ``data_written``: every data file was written, no manifest yet (after ``_write_data``);
- ``manifest_staged``: the manifest is about to become visible: on a disk its temporary file is
  written and synced and ``os.link`` is next; on an object store the conditional PUT is next
  (before ``_create_remote``);
- ``published``: the new version is visible (after ``_publish``).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

STEPS = ("data_file", "data_written", "manifest_staged", "published")


class _PauseAfterDataFile:
    """A filesystem that pauses after each data file it writes (everything else is the real one's)."""

    def __init__(self, fs: Any, pause: Callable[[], None]) -> None:
        self._fs = fs
        self._pause = pause

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> Any:
        out = self._fs.pipe_file(path, value, **kwargs)
        if kwargs.get("mode") != "create":  # the manifest's conditional create is not a data file
            self._pause()
        return out


def _after(real: Callable[..., Any], pause: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(real)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        pause()
        return out

    return wrapped


def _before(real: Callable[..., Any], pause: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(real)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        pause()
        return real(*args, **kwargs)

    return wrapped


def pause_at(step: str, pause: Callable[[], None]) -> None:
    """In this (writer) process, call ``pause`` when a lake write reaches ``step`` (see above)."""
    from mlops_core.data import storage

    if step not in STEPS:
        raise ValueError(f"no commit step {step!r}; the steps are {STEPS}")
    if step == "data_file":
        real_filesystem = storage.filesystem

        def filesystem(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
            fs, path = real_filesystem(uri, storage_options)
            return _PauseAfterDataFile(fs, pause), path

        storage.filesystem = filesystem  # type: ignore[assignment]
    elif step == "data_written":
        storage._write_data = _after(storage._write_data, pause)  # type: ignore[assignment]
    elif step == "manifest_staged":
        os.link = _before(os.link, pause)  # a writer process only: the lake links nothing else
        storage._create_remote = _before(storage._create_remote, pause)  # type: ignore[assignment]
    else:
        storage._publish = _after(storage._publish, pause)  # type: ignore[assignment]
