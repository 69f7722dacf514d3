"""The one exception the converters raise for bad input."""

from __future__ import annotations

from pathlib import Path


class ConversionError(Exception):
    """A source file that cannot be converted.

    The message names the file, the place in it (row, line, column or key), the value found and
    what was expected, so that the user can fix the file without reading the code.

    Args:
        file: the offending file (or folder, when a file is missing).
        where: the place inside the file, e.g. ``"line 3"``; empty when the whole file is at fault.
        got: the value found, already formatted for the message.
        expected: what the converter expected instead.
    """

    def __init__(self, file: str | Path, where: str, got: str, expected: str) -> None:
        self.file = str(file)
        self.where = where
        self.got = got
        self.expected = expected
        place = f"{self.file}: {where}" if where else self.file
        super().__init__(f"{place}: got {got}; expected {expected}")
