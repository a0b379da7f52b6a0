"""Typed exceptions: every error moo-search raises on purpose is a ``MooSearchError``."""

from __future__ import annotations

__all__ = [
    "DataError",
    "ExportError",
    "MissingLibraries",
    "MooSearchError",
    "SpecError",
    "StorageError",
    "TrialFailed",
]


class MooSearchError(Exception):
    """Base class. The CLI prints these without a traceback and exits non-zero."""

    exit_code = 1


class SpecError(MooSearchError, ValueError):
    """A study spec or trial config is invalid. ``field`` is the dotted path at fault."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DataError(MooSearchError):
    """A dataset file is missing, malformed or fails its checksum."""

    exit_code = 2


class TrialFailed(MooSearchError):
    """A trial stopped for a stated reason (NaN loss, diverging loss, ...)."""


class StorageError(MooSearchError):
    """The study storage cannot be opened or holds no such study."""

    exit_code = 2


class ExportError(MooSearchError):
    """An export bundle cannot be written, verified or loaded."""

    exit_code = 2


class MissingLibraries(MooSearchError):
    """What was asked for needs libraries that are not installed (an extra, such as the
    recommender's: ``pip install 'moo-search[recommender]'``)."""

    exit_code = 2
