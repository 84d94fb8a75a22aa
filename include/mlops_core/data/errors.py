"""What a source read can fail with: the errors every reader (files, the lake, DVC) raises."""

from __future__ import annotations


class SourceDataError(ValueError):
    """The source has no usable rows for the requested date; the message says where it looked."""


class SourceNotReady(SourceDataError):
    """No rows (or no file) for the date *yet*: they may still land, so a caller may wait and look again."""
