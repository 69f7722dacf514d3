"""The MMGCN release of Tiktok, Kwai and Movielens (Wei et al., "MMGCN", ACM MM 2019)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts.base import Converter, register
from atomic_data_tools.readers import (
    MAX_ID,
    FeatureFile,
    check_ids,
    load_features,
    load_npy,
    require_file,
)
from atomic_data_tools.safe_pickle import load_object_npy
from atomic_data_tools.source import ConvertOptions, DenseFeature, SourceData, SplitData

logger = logging.getLogger(__name__)

EVAL_FILES = {"valid": ("val_full.npy", "val.npy"), "test": ("test_full.npy", "test.npy")}
"""The accepted names of the per-user evaluation files, preferred name first."""

FEATURES = [
    FeatureFile("visual", "FeatureVideo_normal.npy"),
    FeatureFile("acoustic", "FeatureAudio_avg_normal.npy"),
    FeatureFile("textual", "FeatureText_stl_normal.npy"),
    FeatureFile("visual", "feat_v.pt"),
    FeatureFile("acoustic", "feat_a.pt"),
    FeatureFile("textual", "feat_t.pt", word_pairs=True),
]
"""Movielens stores numpy matrices, Tiktok and Kwai saved tensors (Kwai only ``feat_v.pt``)."""


@register
class MMGCNConverter(Converter):
    """Converter of the MMGCN release.

    Files of the release folder:

    * ``train.npy``: an integer array of ``[user, item]`` rows.
    * ``val_full.npy`` and ``test_full.npy`` (named ``val.npy`` and ``test.npy`` in some copies):
      object arrays with one row per user, ``[user, item, item, ...]``. They are read through the
      restricted unpickler of :func:`~atomic_data_tools.safe_pickle.load_object_npy`; plain
      integer arrays of equal-length rows are accepted as well.
    * ``user_item_dict.npy``: a pickled dict that duplicates ``train.npy``. It is never read.
    * Features, row ``k`` belonging to item ``k``: Movielens ``FeatureVideo_normal.npy``
      (visual, 2048-d), ``FeatureAudio_avg_normal.npy`` (acoustic, 128-d) and
      ``FeatureText_stl_normal.npy`` (textual, 100-d); Tiktok ``feat_v.pt``, ``feat_a.pt`` and
      ``feat_t.pt``; Kwai ``feat_v.pt``. Tiktok's ``feat_t.pt`` is either a dense matrix or a
      ``2 x N`` integer tensor of ``(item k, word id)`` pairs, which becomes the ``words``
      token_seq field of ``NAME.item``.

    Users are numbered from 0. The full releases number items after the users
    (``item = num_users + k``), some sample releases from 0 (``item = k``); ``num_users`` is the
    largest user id plus one unless ``--num-users`` sets it. The numbering is detected: ids that
    all lie in ``num_users .. num_users + rows - 1`` are numbered after the users, ids in
    ``0 .. rows - 1`` from 0 (``rows`` being the feature row count), and anything else is refused.
    When both fit, numbering after the users wins with a warning; ``--item-numbering`` forces one.

    Item tokens: the written item token is ``k``, the feature row index, in both numberings, so
    that the tokens agree with the features and with the other layouts; the offset removed is
    recorded in the statistics (``notes.item_id_offset``) and error messages quote the ids as
    they are in the files.
    """

    name = "mmgcn"
    summary = (
        "train.npy, val_full.npy (or val.npy), test_full.npy (or test.npy)\n"
        "features: FeatureVideo_normal.npy, FeatureAudio_avg_normal.npy,\n"
        "FeatureText_stl_normal.npy (Movielens) or feat_v.pt, feat_a.pt, feat_t.pt\n"
        "(Tiktok, Kwai); feat_t.pt may be a 2 x N (item, word id) tensor. Items numbered\n"
        "after the users or from 0 are detected (--item-numbering, --num-users)."
    )

    @classmethod
    def detect(cls, folder: Path, options: ConvertOptions) -> bool:
        """Tell whether ``folder`` holds ``train.npy``.

        Args:
            folder: the release folder.
            options: unused by this layout.

        Returns:
            Whether the signature file is present.
        """
        return (folder / "train.npy").is_file()

    def read(self, folder: Path, options: ConvertOptions) -> SourceData:
        """Read the release, detect its item numbering and renumber items from 0.

        Args:
            folder: the release folder.
            options: the conversion options (``item_numbering`` and ``num_users``).

        Returns:
            The interactions, with item ids equal to feature row indices, and the features.

        Raises:
            ConversionError: if a file is missing or malformed, or the item ids fit neither
                numbering.
        """
        train_path = require_file(folder, "train.npy", "an integer array of [user, item] rows")
        splits = {"train": _read_train(train_path)}
        files = ["train.npy"]
        for split, names in EVAL_FILES.items():
            path = _find_eval_file(folder, names)
            splits[split] = _read_eval(path, split)
            files.append(path.name)
        dense, words, feature_files = load_features(folder, FEATURES)
        files += feature_files

        num_users, offset = _numbering(folder, splits, dense, options)
        for split in splits.values():
            split.items = split.items - offset
        return SourceData(
            layout=self.name,
            files=files,
            splits=splits,
            dense=dense,
            words=words,
            num_users=num_users,
            item_offset=offset,
            notes={
                "item_numbering": "after users" if offset else "from 0",
                "item_id_offset": offset,
            },
        )


def _find_eval_file(folder: Path, names: tuple[str, ...]) -> Path:
    """Return the one present file among the accepted names of an evaluation split."""
    present = [folder / name for name in names if (folder / name).is_file()]
    if len(present) == 1:
        return present[0]
    got = "both " + " and ".join(names) if present else "none of " + ", ".join(names)
    raise ConversionError(folder, "", got, f"exactly one of {', '.join(names)}")


def _read_train(path: Path) -> SplitData:
    """Read ``train.npy``: an ``(n, 2)`` integer array of ``[user, item]`` rows."""
    array = load_npy(path)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ConversionError(path, "", f"shape {array.shape}", "an (n, 2) array of [user, item]")
    rows = np.arange(len(array), dtype=np.int64)
    return SplitData(
        name="train",
        source=path.name,
        location="row",
        users=check_ids(array[:, 0], path, "user", "row"),
        items=check_ids(array[:, 1], path, "item", "row"),
        rows=rows,
    )


def _read_eval(path: Path, split: str) -> SplitData:
    """Read a per-user evaluation file of ``[user, item, item, ...]`` rows."""
    array = load_object_npy(path)
    if array.ndim not in (1, 2):
        raise ConversionError(path, "", f"shape {array.shape}", "one row per user")
    users: list[int] = []
    items: list[int] = []
    rows: list[int] = []
    for index, row in enumerate(array):
        values = row.tolist() if isinstance(row, np.ndarray) else row
        if not isinstance(values, (list, tuple)) or not values:
            raise ConversionError(path, f"row {index}", repr(values), "a row [user, item, ...]")
        for position, value in enumerate(values):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise ConversionError(
                    path, f"row {index}, position {position}", repr(value), "an integer id"
                )
            if not 0 <= int(value) <= MAX_ID:
                what = "user" if position == 0 else "item"
                raise ConversionError(
                    path, f"row {index}", f"{what} id {int(value)}", f"0 <= id <= {MAX_ID}"
                )
        users += [int(values[0])] * (len(values) - 1)
        items += [int(value) for value in values[1:]]
        rows += [index] * (len(values) - 1)
    row_array = np.array(rows, dtype=np.int64)
    return SplitData(
        name=split,
        source=path.name,
        location="row",
        users=check_ids(np.array(users, dtype=np.int64), path, "user", "row", row_array),
        items=check_ids(np.array(items, dtype=np.int64), path, "item", "row", row_array),
        rows=row_array,
    )


def _numbering(
    folder: Path, splits: dict[str, SplitData], dense: list[DenseFeature], options: ConvertOptions
) -> tuple[int, int]:
    """Detect the item numbering.

    Returns:
        The number of users and the item id offset (``num_users`` or 0).
    """
    max_user = max(int(split.users.max(initial=-1)) for split in splits.values())
    num_users = options.num_users if options.num_users is not None else max_user + 1
    if max_user >= num_users:
        raise ConversionError(
            folder, "user ids", f"user id {max_user}", f"ids below --num-users {num_users}"
        )
    items = np.concatenate([split.items for split in splits.values()])
    if len(items) == 0:
        raise ConversionError(folder, "", "no interactions", "at least one interaction")
    low, high = int(items.min()), int(items.max())
    rows = dense[0].matrix.shape[0] if dense else None
    fits = {
        "offset": low >= num_users and (rows is None or high < num_users + rows),
        "zero": rows is None or high < rows,
    }
    choice = options.item_numbering
    if choice == "auto":
        choice = "offset" if fits["offset"] else "zero"
        if fits["offset"] and fits["zero"] and rows is not None:
            logger.warning(
                "%s: item ids %d..%d fit both numberings; taking items numbered after the %d "
                "users (use --item-numbering zero for the other)",
                folder,
                low,
                high,
                num_users,
            )
    if not fits[choice]:
        row_text = f"{rows} feature rows" if rows is not None else "no features"
        after = f"{num_users}..{num_users + rows - 1}" if rows is not None else f">= {num_users}"
        expected = {
            "offset": f"items numbered after the users ({after})",
            "zero": f"items numbered from 0 (0..{(rows or 0) - 1})",
        }
        wanted = (
            expected[choice] if options.item_numbering != "auto" else " or ".join(expected.values())
        )
        raise ConversionError(
            folder,
            "item ids",
            f"items {low}..{high} with {num_users} users and {row_text}",
            wanted,
        )
    offset = num_users if choice == "offset" else 0
    if offset:
        logger.info(
            "%s: items are numbered after the %d users (item = %d + k)", folder, num_users, offset
        )
    else:
        logger.info("%s: items are numbered from 0 (item = k)", folder)
    return num_users, offset
