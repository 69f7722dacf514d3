"""One converter per release layout, behind one registry.

Importing this package registers the ``mmgcn``, ``slmrec``, ``mmssl`` and ``mmrec`` converters.
"""

from __future__ import annotations

from pathlib import Path

from atomic_data_tools.errors import ConversionError

# Importing the layout modules registers their converters.
from atomic_data_tools.layouts import mmgcn, mmrec, mmssl, slmrec  # noqa: F401
from atomic_data_tools.layouts.base import REGISTRY, Converter, register
from atomic_data_tools.source import ConvertOptions

__all__ = ["REGISTRY", "Converter", "detect_layout", "get_converter", "register"]


def get_converter(name: str) -> Converter:
    """Return a new converter for the layout ``name``.

    Args:
        name: a key of :data:`REGISTRY`.

    Returns:
        The converter.

    Raises:
        ConversionError: if no converter has that name.
    """
    try:
        return REGISTRY[name]()
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ConversionError("--layout", "", repr(name), f"one of {known}") from None


def detect_layout(folder: Path, options: ConvertOptions) -> str:
    """Find the one layout whose signature files ``folder`` holds.

    Args:
        folder: the release folder.
        options: the conversion options (for file-name prefixes).

    Returns:
        The layout name.

    Raises:
        ConversionError: if the folder is absent, or matches no layout or several.
    """
    if not folder.is_dir():
        raise ConversionError(folder, "", "no such folder", "the folder of a release")
    found = [name for name, cls in REGISTRY.items() if cls.detect(folder, options)]
    if len(found) == 1:
        return found[0]
    expected = "; ".join(f"{name}: {cls.summary.splitlines()[0]}" for name, cls in REGISTRY.items())
    got = f"files of the layouts {', '.join(found)}" if found else "no known layout's files"
    raise ConversionError(folder, "layout", got, f"exactly one of ({expected}); or pass --layout")
