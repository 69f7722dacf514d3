"""The SLMRec release of Tiktok, Kwai and Movielens (Tao et al., "Self-supervised Learning for
Multimedia Recommendation", IEEE TMM 2022)."""

from __future__ import annotations

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
from atomic_data_tools.source import ConvertOptions, SourceData, SplitData


def feature_files(prefix: str) -> list[FeatureFile]:
    """The feature file names of the release whose files start with ``prefix``.

    Args:
        prefix: the release's ``<name>``.

    Returns:
        Tiktok's saved tensors (the textual one holding word pairs), Kwai's and Movielens'.
    """
    return [
        FeatureFile("visual", f"{prefix}_visual_feat.pt"),
        FeatureFile("acoustic", f"{prefix}_audio_feat.pt"),
        FeatureFile("textual", f"{prefix}_textual_feat.pt", word_pairs=True),
        FeatureFile("visual", f"{prefix}_feat_v.pt"),
        FeatureFile("visual", f"{prefix}_FeatureVideo_normal.npy"),
        FeatureFile("acoustic", f"{prefix}_FeatureAudio_avg_normal.npy"),
        FeatureFile("textual", f"{prefix}_FeatureText_stl_normal.npy"),
    ]


@register
class SLMRecConverter(Converter):
    """Converter of the SLMRec release.

    Files of the release folder, ``<name>`` being ``--prefix`` (default: the dataset name):

    * ``<name>.train`` and ``<name>.test``: ``user,item`` lines separated by a comma, no header.
      Blank lines are skipped. There is no validation file: the pipeline carves one out of
      ``<name>.train`` per user (``--val-ratio``, ``--seed``), never touching the test split.
    * Features, row ``i`` belonging to the original item id ``i``: Tiktok
      ``<name>_visual_feat.pt``, ``<name>_audio_feat.pt`` and ``<name>_textual_feat.pt`` (a
      ``2 x N`` integer tensor of ``(item, word id)`` pairs, written as the ``words`` token_seq
      field); Kwai ``<name>_feat_v.pt``; Movielens ``<name>_FeatureVideo_normal.npy``,
      ``<name>_FeatureAudio_avg_normal.npy`` and ``<name>_FeatureText_stl_normal.npy``.

    User and item tokens are the original ids. Item ids must index the feature rows.
    """

    name = "slmrec"
    summary = (
        "<name>.train, <name>.test ('user,item' lines, no header, no validation file)\n"
        "features: <name>_visual_feat.pt, <name>_audio_feat.pt, <name>_textual_feat.pt\n"
        "(Tiktok, word pairs), <name>_feat_v.pt (Kwai), <name>_FeatureVideo_normal.npy,\n"
        "<name>_FeatureAudio_avg_normal.npy, <name>_FeatureText_stl_normal.npy (Movielens).\n"
        "<name> is --prefix (default: --dataset); validation is carved from train."
    )

    @classmethod
    def detect(cls, folder: Path, options: ConvertOptions) -> bool:
        """Tell whether ``folder`` holds ``<name>.train`` and ``<name>.test``.

        Args:
            folder: the release folder.
            options: the options giving ``<name>``.

        Returns:
            Whether both signature files are present.
        """
        prefix = options.file_prefix
        return (folder / f"{prefix}.train").is_file() and (folder / f"{prefix}.test").is_file()

    def read(self, folder: Path, options: ConvertOptions) -> SourceData:
        """Read the two interaction files and the features.

        Args:
            folder: the release folder.
            options: the options giving ``<name>``.

        Returns:
            The train and test splits and the features.

        Raises:
            ConversionError: if a file is missing or malformed.
        """
        prefix = options.file_prefix
        splits = {}
        files = []
        for split in ("train", "test"):
            path = require_file(folder, f"{prefix}.{split}", "'user,item' lines")
            splits[split] = read_pairs(path, split)
            files.append(path.name)
        dense, words, names = load_features(folder, feature_files(prefix))
        return SourceData(
            layout=self.name, files=files + names, splits=splits, dense=dense, words=words
        )


def read_pairs(path: Path, split: str) -> SplitData:
    """Read a headerless text file of ``user,item`` lines.

    Args:
        path: the file.
        split: the split it holds.

    Returns:
        The split, ``rows`` holding 1-based line numbers.

    Raises:
        ConversionError: on a wrong separator, a non-numeric id or an empty file.
    """
    users: list[int] = []
    items: list[int] = []
    rows: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as stream:
        lines = tqdm(stream, desc=f"reading {path.name}", unit=" lines", disable=None)
        try:
            for number, line in enumerate(lines, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                where = f"line {number}"
                user, item = split_fields(line, ",", 2, path, where)
                users.append(parse_id(user.strip(), path, where, "user"))
                items.append(parse_id(item.strip(), path, where, "item"))
                rows.append(number)
        except UnicodeDecodeError as err:
            raise ConversionError(path, "", f"undecodable bytes ({err})", "UTF-8 text") from err
    if not users:
        raise ConversionError(path, "", "no interactions", "at least one 'user,item' line")
    return SplitData(
        name=split,
        source=path.name,
        location="line",
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        rows=np.array(rows, dtype=np.int64),
    )
