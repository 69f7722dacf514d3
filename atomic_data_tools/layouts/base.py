"""The converter interface and the registry that the command line dispatches through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from atomic_data_tools.source import ConvertOptions, SourceData

REGISTRY: dict[str, type[Converter]] = {}
"""The converters by layout name, in registration order."""


class Converter(ABC):
    """Reads one release layout into a :class:`~atomic_data_tools.source.SourceData`.

    A subclass reads and checks its files; everything shared (id range checks, duplicate
    removal, split disjointness, validation carving, statistics and writing) happens afterwards
    in :func:`atomic_data_tools.pipeline.convert`.
    """

    name: ClassVar[str]
    """The layout name used by ``--layout`` and the registry."""

    summary: ClassVar[str]
    """A few lines describing the layout's files, shown by ``--help``."""

    @classmethod
    @abstractmethod
    def detect(cls, folder: Path, options: ConvertOptions) -> bool:
        """Tell whether ``folder`` holds this layout's signature files.

        Args:
            folder: the release folder.
            options: the conversion options (for file-name prefixes).

        Returns:
            ``True`` if the layout's mandatory files are present.
        """

    @abstractmethod
    def read(self, folder: Path, options: ConvertOptions) -> SourceData:
        """Read and check the release.

        Args:
            folder: the release folder.
            options: the conversion options.

        Returns:
            The interactions and features found.

        Raises:
            ConversionError: if a file is missing or malformed.
        """


def register(cls: type[Converter]) -> type[Converter]:
    """Class decorator adding a converter to :data:`REGISTRY` under its ``name``.

    Args:
        cls: the converter class.

    Returns:
        The class, unchanged.

    Raises:
        ValueError: if another converter already uses the name.
    """
    if cls.name in REGISTRY:
        raise ValueError(f"converter name {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls
