"""URIs to filesystems: which fsspec filesystem (and path on it) a lake or source URI names.

``${VAR}`` in a URI is expanded first. A URI goes to the resolver in effect, else to fsspec's
defaults. The Airflow layer puts its resolver in effect for the duration of a step
(``with resolving(resolver):``, which ``mlops_airflow.hooks.cloud.cloud_context`` enters) so
``s3://``, ``gs://`` and ``abfs://`` go through Airflow's ``ObjectStoragePath`` and the cloud
profile's connection. The resolver is held in a :class:`~contextvars.ContextVar`, not a
process-wide global: it applies in the ``with`` block (and the threads and tasks started with a
copy of its context) and is undone when the block ends; code that runs outside any such block (a
notebook, the unit tests) gets fsspec's defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from mlops_core.base.settings import expand
from mlops_core.data.errors import SourceDataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fsspec import AbstractFileSystem

Resolver = Callable[[str, "dict[str, Any] | None"], "tuple[AbstractFileSystem, str] | None"]
_RESOLVER: ContextVar[Resolver | None] = ContextVar("mlops_core_filesystem_resolver", default=None)


@contextmanager
def resolving(resolver: Resolver | None) -> Iterator[None]:
    """Within the block, URIs become filesystems through ``resolver`` (the Airflow layer:
    ObjectStoragePath + connections); the previous resolver is back when the block ends.

    The resolver returns None for URIs it leaves to fsspec's defaults (local paths).
    """
    token = _RESOLVER.set(resolver)
    try:
        yield
    finally:
        _RESOLVER.reset(token)


def filesystem(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """Resolve a URI (``${VAR}`` expanded) to an fsspec filesystem and a path on it."""
    from fsspec.core import url_to_fs

    uri = expand(uri)
    if uri[:6].lower() == "dvc://":  # fsspec would open a DVC repo in the working directory
        raise SourceDataError(
            f"{uri} is a path inside source.dvc's repository; it is read by mlops_core.data.dvc_source"
        )
    resolver = _RESOLVER.get()
    if resolver is not None and (found := resolver(uri, storage_options)) is not None:
        return found
    return url_to_fs(uri, **(storage_options or {}))


def is_local(fs: AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def join(root: str, *parts: str) -> str:
    return "/".join([expand(root).rstrip("/"), *parts])
