"""Errors raised on bad user input; the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad user input (a missing path, a corrupt file, a shape mismatch, NaNs), naming where it came from.

    ``path`` and ``line`` are optional; when given they lead the message, so that the one line a user sees says
    which file (and line) is wrong and what is wrong with it.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
