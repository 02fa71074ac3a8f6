"""A one-line progress report for long loops (evaluation, inference, data reading).

On a terminal the line is rewritten in place; in a log file or pipe, where '\\r' rewrites pile up into one long
line, a plain line is written at most every ``interval`` seconds, and the final line always.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """``update(text)`` while working, ``finish(text)`` (or ``finish()``: keep the last text) at the end.

    Args:
        stream: where to write (stderr by default: keeps stdout for results).
        enabled: False makes every call a no-op (the ``progress=False`` of the callers).
        interval: seconds between lines when ``stream`` is not a terminal.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool = True, interval: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0
        self._last_text = ""
        self._pending = False  # the last update is not written yet (not a terminal)
        self._last_write = -float("inf")

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        self._last_text = text
        if self.live:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = max(self._width, len(text))
            self.stream.flush()
        elif time.monotonic() - self._last_write >= self.interval:
            self._write_line(text)
        else:
            self._pending = True

    def finish(self, text: str | None = None) -> None:
        if not self.enabled:
            return
        if self.live:
            text = self._last_text if text is None else text
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self.stream.flush()
        elif text is not None or self._pending:
            self._write_line(self._last_text if text is None else text)
        self._width, self._last_text = 0, ""

    def _write_line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self._pending = False
        self._last_write = time.monotonic()
