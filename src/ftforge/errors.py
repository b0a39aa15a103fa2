"""Errors a user can meet. The library raises these; ``ftforge.cli`` prints them.

Every error says what went wrong, names the file or package involved, and says
what to do next (``hint``).
"""

from __future__ import annotations

__all__ = [
    "BenchmarkError",
    "BuildFailedError",
    "ChannelError",
    "FtforgeError",
    "MissingSystemDependency",
    "OutputInsideChannelError",
    "RecipeDriftError",
    "SolveError",
    "SourceChecksumError",
    "SourceUnavailableError",
    "UnknownPythonVersion",
]


class FtforgeError(Exception):
    """Base class: a message for the user and a hint about what to do next."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UnknownPythonVersion(FtforgeError):
    """A Python version ftforge has no facts (series or source checksum) for."""


class RecipeDriftError(FtforgeError):
    """Committed recipe files differ from what the generator writes."""


class SourceChecksumError(FtforgeError):
    """A source archive's sha256 does not match the recipe."""


class SourceUnavailableError(FtforgeError):
    """A recipe's source is not in the local mirror and cannot be fetched."""


class MissingSystemDependency(FtforgeError):
    """A Debian package the build needs is not installed."""


class OutputInsideChannelError(FtforgeError):
    """A build output directory lies inside a published channel."""


class BuildFailedError(FtforgeError):
    """rattler-build failed; the log file is named in the message."""


class SolveError(FtforgeError):
    """The solver could not satisfy the requested specs."""


class BenchmarkError(FtforgeError):
    """A benchmark's interpreter, anchor root filesystem or result file is unusable."""


class ChannelError(FtforgeError):
    """A channel directory is missing, malformed, or refuses a package."""
