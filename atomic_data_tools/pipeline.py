"""The conversion steps shared by every layout: check, clean, split, describe, write.

After a layout reader has produced a :class:`~atomic_data_tools.source.SourceData`,
:func:`convert`

1. checks that the dense feature matrices agree on their row count with each other and with the
   item count the release declares, and that every user, item and word-pair item id is in range;
2. removes exact duplicate interactions within each split, counting them;
3. refuses an interaction (user, item) that appears in two splits;
4. carves a validation split out of the train split when the release has none;
5. keeps the feature rows of the items that appear in some split;
6. writes the dataset folder and returns the statistics report.
"""

from __future__ import annotations

import logging
from itertools import combinations
from pathlib import Path

import numpy as np

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts import detect_layout, get_converter
from atomic_data_tools.report import build_stats
from atomic_data_tools.source import (
    SPLITS,
    ConvertOptions,
    DenseOutput,
    PreparedDataset,
    SourceData,
    SplitData,
    WordFeature,
    WordOutput,
)
from atomic_data_tools.writer import write_dataset

logger = logging.getLogger(__name__)

WORD_FIELD = "words"
"""The token_seq field of ``NAME.item`` holding the word ids of the text modality."""


def convert(
    input_dir: Path | str,
    options: ConvertOptions,
    layout: str = "auto",
    output_dir: Path | str | None = None,
) -> dict[str, object]:
    """Convert one release folder into a RecBole dataset folder.

    Args:
        input_dir: the release folder.
        options: the conversion options.
        layout: a registered layout name, or ``auto`` to detect it from the files present.
        output_dir: the dataset folder; defaults to ``dataset/NAME`` in the current directory.

    Returns:
        The statistics report, as written to ``NAME.stats.json``.

    Raises:
        ConversionError: if the release cannot be converted.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise ConversionError(input_dir, "", "no such folder", "the folder of a release")
    if not 0.0 < options.val_ratio < 1.0:
        raise ConversionError("--val-ratio", "", repr(options.val_ratio), "0 < ratio < 1")
    if layout == "auto":
        layout = detect_layout(input_dir, options)
        logger.info("%s: detected the %s layout", input_dir, layout)
    source = get_converter(layout).read(input_dir, options)
    prepared = prepare(source, input_dir, options)
    stats = build_stats(prepared)
    write_dataset(Path(output_dir or Path("dataset") / options.dataset), prepared, stats)
    return stats


def prepare(source: SourceData, input_dir: Path, options: ConvertOptions) -> PreparedDataset:
    """Check and clean a release as read, without writing anything.

    Args:
        source: the release as read by its layout reader.
        input_dir: the release folder, for messages.
        options: the conversion options (dataset name, validation ratio and seed).

    Returns:
        The dataset ready to be written.

    Raises:
        ConversionError: if counts disagree, an id is out of range or two splits share an
            interaction.
    """
    num_items, items_described = _item_count(source, input_dir)
    _check_ranges(source, input_dir, num_items, items_described)

    splits: dict[str, SplitData] = {}
    duplicates: dict[str, int] = {}
    for name, split in source.splits.items():
        splits[name], duplicates[name] = deduplicate(split)
        if duplicates[name]:
            logger.info("%s: removed %d duplicate interactions", split.source, duplicates[name])
    check_disjoint(splits, input_dir, source.item_offset)
    for name in ("train", "test"):
        if len(splits[name]) == 0:
            raise ConversionError(
                input_dir / splits[name].source,
                "",
                f"no {name} interactions",
                f"at least one interaction in the {name} split",
            )
    if "valid" in splits and len(splits["valid"]) == 0:
        logger.warning(
            "%s: the validation split is empty; carving one out of the train split instead",
            input_dir / splits["valid"].source,
        )
        del splits["valid"]

    if "valid" in splits:
        validation: dict[str, object] = {"source": splits["valid"].source}
    else:
        splits["train"], splits["valid"], validation = carve_validation(
            splits["train"], options.val_ratio, options.seed
        )
        duplicates["valid"] = 0
        if len(splits["valid"]) == 0:
            raise ConversionError(
                input_dir / splits["train"].source,
                "",
                "no user with two or more train interactions",
                "at least one, so that a validation split can be carved out of the train split",
            )
        logger.info(
            "carved %d validation interactions out of the train split (ratio %g, seed %d)",
            len(splits["valid"]),
            options.val_ratio,
            options.seed,
        )
    splits = {name: splits[name] for name in SPLITS}
    duplicates = {name: duplicates[name] for name in SPLITS}

    users = np.unique(np.concatenate([split.users for split in splits.values()]))
    items = np.unique(np.concatenate([split.items for split in splits.values()]))
    dense = [
        DenseOutput(f.modality, f.source, f.matrix[items], items, f.matrix.shape[0])
        for f in source.dense
    ]
    words = [_word_output(feature, items) for feature in source.words]
    return PreparedDataset(
        name=options.dataset,
        source=source,
        splits=splits,
        duplicates=duplicates,
        validation=validation,
        users=users,
        items=items,
        num_items=num_items,
        dense=dense,
        words=words,
    )


def _item_count(source: SourceData, input_dir: Path) -> tuple[int | None, str]:
    """Return the item count and where it comes from; check the feature row counts against it."""
    count = source.num_items
    described = f"the item count {count} of {source.files[0]}" if count is not None else ""
    for feature in source.dense:
        rows = feature.matrix.shape[0]
        if count is None:
            count, described = rows, f"the {rows} rows of {feature.source}"
        elif rows != count:
            raise ConversionError(
                input_dir / feature.source,
                "rows",
                f"{rows} feature rows",
                f"one row per item: {described}",
            )
    return count, described


def _check_ranges(
    source: SourceData, input_dir: Path, num_items: int | None, described: str
) -> None:
    """Check the user, item and word-pair item ids against the counts of the release."""
    for split in source.splits.values():
        limits = (("user", split.users, source.num_users, f"the user count {source.num_users}"),)
        if num_items is not None:
            limits += (("item", split.items, num_items, described),)
        for what, ids, limit, text in limits:
            if limit is None:
                continue
            bad = ids >= limit
            if bad.any():
                pos = int(np.argmax(bad))
                shown = ids[pos] + (source.item_offset if what == "item" else 0)
                raise ConversionError(
                    input_dir / split.source,
                    f"{split.location} {split.rows[pos]}",
                    f"{what} id {shown}",
                    f"an id below {text}",
                )
    for feature in source.words:
        bad = feature.items >= num_items if num_items is not None else np.zeros(0, dtype=bool)
        if bad.any():
            pos = int(np.argmax(bad))
            raise ConversionError(
                input_dir / feature.source,
                f"column {pos}",
                f"item id {feature.items[pos]}",
                f"an id below {described}",
            )


def deduplicate(split: SplitData) -> tuple[SplitData, int]:
    """Sort a split by user, item and value columns and drop exact duplicates.

    Args:
        split: the split as read.

    Returns:
        The sorted split keeping the first occurrence of each interaction, and the number of
        duplicates removed.
    """
    columns = [split.users, split.items] + list(split.values.values())
    ordered = split.subset(np.lexsort([split.rows] + columns[::-1]))
    sorted_columns = [ordered.users, ordered.items] + list(ordered.values.values())
    same = np.ones(max(len(ordered) - 1, 0), dtype=bool)
    for column in sorted_columns:
        same &= column[1:] == column[:-1]
    keep = np.concatenate([[True], ~same])[: len(ordered)]
    return ordered.subset(keep), int((~keep).sum())


def check_disjoint(splits: dict[str, SplitData], input_dir: Path, item_offset: int) -> None:
    """Refuse an interaction (user, item) present in two splits.

    Args:
        splits: the splits by name.
        input_dir: the release folder, for messages.
        item_offset: what the reader subtracted from the item ids, to quote them as in the files.

    Raises:
        ConversionError: naming the later split's file and place, and the earlier one's.
    """
    names = [name for name in SPLITS if name in splits]
    keys = {name: _pair_keys(splits[name]) for name in names}
    for first, second in combinations(names, 2):
        shared = np.isin(keys[second], keys[first])
        if not shared.any():
            continue
        pos = int(np.argmax(shared))
        earlier = int(np.flatnonzero(keys[first] == keys[second][pos])[0])
        a, b = splits[first], splits[second]
        raise ConversionError(
            input_dir / b.source,
            f"{b.location} {b.rows[pos]}",
            f"the {second} interaction (user {b.users[pos]}, item {b.items[pos] + item_offset}), "
            f"which is also a {first} interaction ({a.source}, {a.location} {a.rows[earlier]})",
            "the train, valid and test splits to be disjoint",
        )


def _pair_keys(split: SplitData) -> np.ndarray:
    """One int64 per interaction, equal for equal (user, item) pairs (ids are below 2**31)."""
    return (split.users.astype(np.int64) << 31) | split.items.astype(np.int64)


def carve_validation(
    train: SplitData, ratio: float, seed: int
) -> tuple[SplitData, SplitData, dict[str, object]]:
    """Move a random share of each user's train interactions into a validation split.

    A user with ``n >= 2`` train interactions gives ``ratio * n`` of them, rounded half up, at
    least one and at most ``n - 1``; a user with a single one keeps it in train. The test split
    is never looked at.

    Args:
        train: the deduplicated train split.
        ratio: the share to move, ``0 < ratio < 1``.
        seed: the seed of the random choice.

    Returns:
        The remaining train split, the validation split (both in the order of ``train``) and a
        description for the report.
    """
    noise = np.random.default_rng(seed).random(len(train))
    order = np.lexsort((noise, train.users))
    _, first, counts = np.unique(train.users[order], return_index=True, return_counts=True)
    rank = np.arange(len(train)) - np.repeat(first, counts)
    size = np.repeat(counts, counts)
    quota = np.where(size >= 2, np.clip(np.floor(ratio * size + 0.5), 1, size - 1), 0)
    chosen = np.zeros(len(train), dtype=bool)
    chosen[order[rank < quota]] = True
    valid = train.subset(chosen, name="valid")
    info: dict[str, object] = {
        "source": f"carved from {train.source}",
        "ratio": ratio,
        "seed": seed,
        "users": int(len(np.unique(valid.users))),
        "single_interaction_users_kept_in_train": int((counts == 1).sum()),
    }
    return train.subset(~chosen), valid, info


def _word_output(feature: WordFeature, items: np.ndarray) -> WordOutput:
    """Group the word pairs of the dataset's items by item, keeping the source order."""
    keep = np.isin(feature.items, items)
    pair_items, pair_words = feature.items[keep], feature.words[keep]
    order = np.argsort(pair_items, kind="stable")
    words: dict[int, list[int]] = {int(item): [] for item in items}
    for item, word in zip(pair_items[order].tolist(), pair_words[order].tolist()):
        words[item].append(word)
    return WordOutput(
        modality=feature.modality,
        field=WORD_FIELD,
        source=feature.source,
        words=words,
        vocabulary=int(feature.words.max(initial=-1)) + 1,
        pairs=int(keep.sum()),
        source_items=int(len(np.unique(feature.items))),
    )
