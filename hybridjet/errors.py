"""User-facing errors: one line, no traceback, from the CLI."""

from __future__ import annotations


class HybridjetError(Exception):
    """An error caused by user input (a file, a field, a setting); printed as one line by the CLI."""


class _PathError(HybridjetError):
    """A problem with one path: ``"<path>: <problem>"``."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[object, str], dict[str, object]]:
        # rebuilt from its own arguments (and attributes): an error raised in a worker process reaches the CLI as itself
        return type(self), (self.path, self.problem), self.__dict__


class InputFileError(_PathError):
    """A file the user gave is missing, unreadable or not in the expected layout."""


class OutputPathError(_PathError, OSError):
    """An output path the user gave cannot be written: a directory, under a file, in a read-only directory.

    Also an ``OSError``, so callers that tolerate an unwritable output (a cache next to a read-only run) still do.
    """
