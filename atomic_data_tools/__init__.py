"""Converters from the public multimedia-recommendation releases to RecBole atomic files.

The releases of Tiktok, Kwai and Movielens prepared for MMGCN (Wei et al., ACM MM 2019), SLMRec
(Tao et al., IEEE TMM 2022) and MMSSL/DiffMM (Wei et al., WWW 2023; Jiang et al., ACM MM 2024),
and the Amazon releases of MMRec, become one dataset folder in the layout of
``docs/DATA_FORMAT.md``: pre-split ``.inter`` files, feature matrices with their item ids, an
``.item`` file for word ids, ``NAME.yaml`` and ``NAME.stats.json``.

Example:
    >>> from atomic_data_tools import ConvertOptions, convert
    >>> stats = convert("raw/tiktok", ConvertOptions(dataset="tiktok"))  # doctest: +SKIP

The command line is ``python -m atomic_data_tools`` (see :mod:`atomic_data_tools.cli`).
"""

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts import REGISTRY, Converter, detect_layout, get_converter
from atomic_data_tools.pipeline import convert
from atomic_data_tools.source import ConvertOptions

__all__ = [
    "REGISTRY",
    "ConversionError",
    "ConvertOptions",
    "Converter",
    "convert",
    "detect_layout",
    "get_converter",
]
