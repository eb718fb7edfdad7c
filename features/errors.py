"""The exception hierarchy shared by every mmops package.

Two families matter to callers: :class:`TemporaryError` (worth retrying with backoff: a
network blip, a busy venue) and :class:`OperationalError` (stop: fail the flow, stop quoting).
Input problems are :class:`DataError`, which is also a ``ValueError`` so plain callers can
catch it the usual way.
"""

from __future__ import annotations


class MmopsError(Exception):
    """Root of every error mmops raises on purpose."""


class TemporaryError(MmopsError):
    """A transient failure of something outside the process; retrying may succeed."""


class OperationalError(MmopsError):
    """A failure that must stop the current job (flow, worker) until a person looks."""


class DataError(MmopsError, ValueError):
    """Input data that cannot be used: unreadable, malformed or failing validation."""


class SourceError(DataError):
    """A source file or response could not be parsed into canonical bars."""


class ValidationFailed(DataError):  # noqa: N818 - reads as the event it reports
    """A batch failed its data-quality suite; it was quarantined, nothing was merged."""

    def __init__(self, message: str, *, quarantine_path: str | None = None) -> None:
        super().__init__(message)
        self.quarantine_path = quarantine_path


class ConfigError(MmopsError, ValueError):
    """``params.yaml`` or an option is invalid."""
