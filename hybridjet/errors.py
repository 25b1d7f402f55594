"""User-facing errors: one line, no traceback, from the CLI."""

from __future__ import annotations


class HybridjetError(Exception):
    """An error caused by user input (a file, a field, a setting); printed as one line by the CLI."""


class InputFileError(HybridjetError):
    """A file the user gave is missing, unreadable or not in the expected layout."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class OutputPathError(HybridjetError, OSError):
    """An output path the user gave cannot be written: a directory, under a file, in a read-only directory.

    Also an ``OSError``, so callers that tolerate an unwritable output (a cache next to a read-only run) still do.
    """

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
