"""The in-memory form of a release, shared by every layout reader and the writer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("visual", "acoustic", "textual")
"""The modality names, in the order in which the dataset configuration lists them."""

SPLITS = ("train", "valid", "test")
"""The split names, in the order of RecBole's ``benchmark_filename``."""

VALUE_COLUMNS = ("rating", "timestamp")
"""The optional float columns of an interaction, in the order in which they are written."""


@dataclass(frozen=True)
class ConvertOptions:
    """The user's choices for one conversion.

    Args:
        dataset: the dataset name ``NAME`` of the written files.
        prefix: the file-name prefix of the SLMRec and MMRec releases; ``None`` means ``dataset``.
        val_ratio: the share of each user's train interactions carved out as validation when the
            release has no validation split.
        seed: the seed of that carving.
        item_numbering: MMGCN release only: ``auto``, ``offset`` (items numbered after the users)
            or ``zero`` (items numbered from 0).
        num_users: MMGCN release only: the number of users, i.e. the item id offset; ``None``
            derives it from the largest user id.
    """

    dataset: str
    prefix: str | None = None
    val_ratio: float = 0.1
    seed: int = 2020
    item_numbering: str = "auto"
    num_users: int | None = None

    @property
    def file_prefix(self) -> str:
        """The prefix of the release's file names."""
        return self.prefix if self.prefix is not None else self.dataset


@dataclass
class SplitData:
    """The interactions of one split.

    Args:
        name: ``train``, ``valid`` or ``test``.
        source: the file they come from, for messages.
        location: what ``rows`` counts in that file (``line``, ``row`` or ``entry``).
        users: ``(n,)`` int64 user ids.
        items: ``(n,)`` int64 item ids, i.e. feature row indices.
        rows: ``(n,)`` int64 place of each interaction in ``source``.
        values: optional ``(n,)`` float64 columns named after :data:`VALUE_COLUMNS`.
    """

    name: str
    source: str
    location: str
    users: np.ndarray
    items: np.ndarray
    rows: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        """The number of interactions."""
        return len(self.users)

    def subset(self, mask: np.ndarray, name: str | None = None) -> SplitData:
        """Return the interactions selected by ``mask`` (a boolean mask or an index array).

        Args:
            mask: the selection.
            name: the split name of the result; defaults to this split's name.

        Returns:
            A new split holding the selected interactions, in the order of ``mask``.
        """
        return SplitData(
            name=name or self.name,
            source=self.source,
            location=self.location,
            users=self.users[mask],
            items=self.items[mask],
            rows=self.rows[mask],
            values={key: column[mask] for key, column in self.values.items()},
        )


@dataclass
class DenseFeature:
    """A dense feature matrix whose row ``i`` belongs to item ``i``.

    Args:
        modality: one of :data:`MODALITIES`.
        source: the file it comes from.
        matrix: ``(num_items, width)`` float32, C order, finite.
    """

    modality: str
    source: str
    matrix: np.ndarray


@dataclass
class WordFeature:
    """The ``(item, word id)`` pairs of a text modality, in source order.

    Args:
        modality: one of :data:`MODALITIES`.
        source: the file it comes from.
        items: ``(n,)`` int64 item ids.
        words: ``(n,)`` int64 word ids.
    """

    modality: str
    source: str
    items: np.ndarray
    words: np.ndarray


@dataclass
class SourceData:
    """Everything a layout reader found in a release.

    Args:
        layout: the registry name of the reader.
        files: the names of the files read, in reading order.
        splits: the splits present, by name; ``valid`` may be absent.
        dense: the dense modalities, in :data:`MODALITIES` order.
        words: the word-id modalities (at most one).
        num_users: the number of users the release declares (user ids below it), if any.
        num_items: the number of items the release declares (item ids below it), if any.
        item_offset: what was subtracted from the item ids of the files (MMGCN numbering).
        notes: layout facts for the statistics report.
    """

    layout: str
    files: list[str]
    splits: dict[str, SplitData]
    dense: list[DenseFeature] = field(default_factory=list)
    words: list[WordFeature] = field(default_factory=list)
    num_users: int | None = None
    num_items: int | None = None
    item_offset: int = 0
    notes: dict[str, object] = field(default_factory=dict)


@dataclass
class DenseOutput:
    """A dense modality as written: the rows of the dataset's items only.

    Args:
        modality: the modality name.
        source: the file it comes from.
        matrix: ``(len(ids), width)`` float32.
        ids: ``(len(ids),)`` int64 item ids, ascending; row ``r`` belongs to ``ids[r]``.
        source_rows: the number of rows of the source matrix.
    """

    modality: str
    source: str
    matrix: np.ndarray
    ids: np.ndarray
    source_rows: int


@dataclass
class WordOutput:
    """A word-id modality as written into a token_seq field of ``NAME.item``.

    Args:
        modality: the modality name.
        field: the token_seq field name.
        source: the file it comes from.
        words: the word ids of each item of the dataset, in source order (possibly empty).
        vocabulary: the largest word id plus one.
        pairs: the number of (item, word id) pairs kept.
        source_items: the number of distinct items with words in the source.
    """

    modality: str
    field: str
    source: str
    words: dict[int, list[int]]
    vocabulary: int
    pairs: int
    source_items: int


@dataclass
class PreparedDataset:
    """A checked dataset, ready to be written.

    Args:
        name: the dataset name.
        source: the release as read.
        splits: ``train``, ``valid`` and ``test`` in that order, each without exact duplicates
            and sorted by user, item and the value columns.
        duplicates: the exact duplicates removed from each split.
        validation: how the validation split was obtained (for the report).
        users: the ids of the users of some split, ascending.
        items: the ids of the items of some split, ascending.
        num_items: the release's item count (declared, or the feature row count), if known.
        dense: the dense modalities as written.
        words: the word-id modalities as written.
    """

    name: str
    source: SourceData
    splits: dict[str, SplitData]
    duplicates: dict[str, int]
    validation: dict[str, object]
    users: np.ndarray
    items: np.ndarray
    num_items: int | None
    dense: list[DenseOutput]
    words: list[WordOutput]

    @property
    def value_columns(self) -> list[str]:
        """The optional float columns present, in :data:`VALUE_COLUMNS` order."""
        return [column for column in VALUE_COLUMNS if column in self.splits["train"].values]
