"""The MMRec release of Amazon Baby, Sports and Clothing (Zhou, "MMRec: Simplifying Multimodal
Recommendation", ACM MM Asia 2023 workshops)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts.base import Converter, register
from atomic_data_tools.readers import (
    FeatureFile,
    load_features,
    parse_id,
    require_file,
    split_fields,
)
from atomic_data_tools.source import VALUE_COLUMNS, ConvertOptions, SourceData, SplitData

FEATURES = [FeatureFile("visual", "image_feat.npy"), FeatureFile("textual", "text_feat.npy")]
"""The optional dense features, row ``i`` belonging to item ``i``."""

LABELS = {"0": "train", "1": "valid", "2": "test"}
"""The split of each ``x_label`` value."""

REQUIRED = ("userID", "itemID", "x_label")
"""The columns every ``.inter`` file has."""


@register
class MMRecConverter(Converter):
    """Converter of the MMRec release.

    Files of the release folder, ``<name>`` being ``--prefix`` (default: the dataset name):

    * ``<name>.inter``: tab-separated with a header naming the columns ``userID``, ``itemID``
      and ``x_label`` (``0`` train, ``1`` valid, ``2`` test), possibly ``rating`` and
      ``timestamp`` (written as ``rating:float`` and ``timestamp:float``), in any order. A
      ``:type`` suffix on a header name is ignored, and so are other columns.
    * ``image_feat.npy`` (visual) and ``text_feat.npy`` (textual): dense matrices whose row ``i``
      belongs to item ``i``; either may be absent.

    User and item tokens are the ``userID`` and ``itemID`` values. A release without
    ``x_label = 1`` rows gets a validation split carved out of its train rows.
    """

    name = "mmrec"
    summary = (
        "<name>.inter (tab-separated; userID, itemID, x_label 0/1/2 = train/valid/test,\n"
        "optional rating, timestamp); features (optional, row i = item i): image_feat.npy,\n"
        "text_feat.npy. <name> is --prefix (default: --dataset)."
    )

    @classmethod
    def detect(cls, folder: Path, options: ConvertOptions) -> bool:
        """Tell whether ``folder`` holds ``<name>.inter``.

        Args:
            folder: the release folder.
            options: the options giving ``<name>``.

        Returns:
            Whether the signature file is present.
        """
        return (folder / f"{options.file_prefix}.inter").is_file()

    def read(self, folder: Path, options: ConvertOptions) -> SourceData:
        """Read the labelled interaction file and the features.

        Args:
            folder: the release folder.
            options: the options giving ``<name>``.

        Returns:
            The splits and the features.

        Raises:
            ConversionError: if a file is missing or malformed.
        """
        path = require_file(folder, f"{options.file_prefix}.inter", "a tab-separated .inter file")
        splits = read_labelled_inter(path)
        dense, _, files = load_features(folder, FEATURES)
        return SourceData(layout=self.name, files=[path.name] + files, splits=splits, dense=dense)


def _header(line: str, path: Path) -> dict[str, int]:
    """Map each column name of the header line to its position."""
    names = [field.split(":", 1)[0].strip() for field in line.split("\t")]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = " (it seems to use a comma)" if "," in line else ""
        raise ConversionError(
            path,
            "line 1 (header)",
            f"{line!r}{hint}",
            f"tab-separated column names including {', '.join(REQUIRED)}",
        )
    repeated = sorted({name for name in names if names.count(name) > 1 and name})
    if repeated:
        raise ConversionError(
            path,
            "line 1 (header)",
            f"the column name{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} twice",
            "each column name once",
        )
    return {name: position for position, name in enumerate(names)}


def _parse_float(text: str, path: Path, where: str, column: str) -> float:
    """Parse one finite float field."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConversionError(path, where, f"{column} {text!r}", "a finite number")
    return value


def read_labelled_inter(path: Path) -> dict[str, SplitData]:
    """Read a tab-separated ``.inter`` file whose ``x_label`` column names each row's split.

    Args:
        path: the file.

    Returns:
        The splits present, ``rows`` holding 1-based line numbers.

    Raises:
        ConversionError: on a wrong separator, a non-numeric id, a bad label or a missing split.
    """
    with open(path, encoding="utf-8-sig", newline="") as stream:
        try:
            lines = stream.read().splitlines()
        except UnicodeDecodeError as err:
            raise ConversionError(path, "", f"undecodable bytes ({err})", "UTF-8 text") from err
    if not lines:
        raise ConversionError(path, "", "an empty file", "a header line and interactions")
    columns = _header(lines[0], path)
    values = [column for column in VALUE_COLUMNS if column in columns]
    parsed: dict[str, list[tuple[int, int, int, tuple[float, ...]]]] = {
        s: [] for s in LABELS.values()
    }
    width = len(lines[0].split("\t"))
    rows = tqdm(lines[1:], desc=f"reading {path.name}", unit=" lines", disable=None)
    for number, line in enumerate(rows, start=2):
        if not line.strip():
            continue
        where = f"line {number}"
        fields = split_fields(line, "\t", width, path, where)
        user = parse_id(fields[columns["userID"]].strip(), path, where, "user")
        item = parse_id(fields[columns["itemID"]].strip(), path, where, "item")
        label = fields[columns["x_label"]].strip()
        if label not in LABELS:
            raise ConversionError(
                path, where, f"x_label {label!r}", "0 (train), 1 (valid) or 2 (test)"
            )
        extra = tuple(_parse_float(fields[columns[c]], path, where, c) for c in values)
        parsed[LABELS[label]].append((user, item, number, extra))

    splits = {}
    for split, records in parsed.items():
        if not records:
            if split == "valid":
                continue
            raise ConversionError(
                path, "x_label", f"no rows of the {split} split", "rows labelled 0 and 2"
            )
        splits[split] = SplitData(
            name=split,
            source=path.name,
            location="line",
            users=np.array([r[0] for r in records], dtype=np.int64),
            items=np.array([r[1] for r in records], dtype=np.int64),
            rows=np.array([r[2] for r in records], dtype=np.int64),
            values={
                column: np.array([r[3][k] for r in records], dtype=np.float64)
                for k, column in enumerate(values)
            },
        )
    return splits
