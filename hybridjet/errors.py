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
