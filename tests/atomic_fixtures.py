"""Tiny releases in each source layout, built into a test's ``tmp_path``, and file readers.

All layouts share one small dataset: 4 users, 7 items with features (item 6 has features but
no interaction), a duplicated train interaction and a user (3) without validation items.
Feature row ``i`` of a modality with offset ``o`` holds ``o + 10 * i + j`` in column ``j``, so
that the tests can check which item a written row belongs to.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

NUM_USERS = 4
NUM_ITEMS = 7
TRAIN = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 3), (2, 2), (2, 4), (3, 0), (3, 5)]
VALID = [(0, 3), (1, 4), (2, 5)]
TEST = [(0, 4), (1, 5), (3, 2)]
DUPLICATE = (0, 1)
"""An interaction that each release repeats in its train split."""

SINGLE = (4, 1)
"""The only train interaction of user 4 of the SLMRec release, which must stay in train."""

WORD_PAIRS = [(0, 5), (2, 1), (0, 7), (6, 3), (0, 2)]
"""(item, word id) pairs: item 0 has words 5 7 2, item 2 word 1, item 6 (no interaction) 3."""

WIDTHS = {"visual": 4, "acoustic": 3, "textual": 2}
OFFSETS = {"visual": 0.0, "acoustic": 0.5, "textual": 0.25}


def features(modality: str, rows: int = NUM_ITEMS) -> np.ndarray:
    """The float32 feature matrix of a modality, row ``i`` recognisable as item ``i``.

    Args:
        modality: the modality name.
        rows: the number of rows.

    Returns:
        The ``(rows, WIDTHS[modality])`` matrix.
    """
    grid = 10 * np.arange(rows)[:, None] + np.arange(WIDTHS[modality])[None, :]
    return (grid + OFFSETS[modality]).astype(np.float32)


def word_tensor() -> torch.Tensor:
    """The ``2 x N`` int64 tensor of :data:`WORD_PAIRS`."""
    return torch.tensor(WORD_PAIRS, dtype=torch.int64).T.contiguous()


def _save_tensor(path: Path, array: np.ndarray | torch.Tensor) -> None:
    """Save an array as a tensor with ``torch.save``."""
    torch.save(torch.as_tensor(array), path)


def _object_rows(rows: list[list[object]]) -> np.ndarray:
    """A 1-D object array holding one list per row."""
    array = np.empty(len(rows), dtype=object)
    for index, row in enumerate(rows):
        array[index] = row
    return array


def per_user_rows(pairs: list[tuple[int, int]], offset: int, numpy_ints: bool) -> np.ndarray:
    """The MMGCN evaluation rows ``[user, item, ...]`` of every user, empty ones included."""
    rows = []
    for user in range(NUM_USERS):
        items = [item + offset for u, item in pairs if u == user]
        row = [user] + items
        rows.append([np.int64(value) for value in row] if numpy_ints else row)
    return _object_rows(rows)


def make_mmgcn(
    folder: Path,
    numbering: str = "offset",
    dataset: str = "tiktok",
    text: str = "pairs",
    short_names: bool = False,
) -> Path:
    """Write an MMGCN release.

    Args:
        folder: the folder to create.
        numbering: ``offset`` (items numbered after the users) or ``zero``.
        dataset: ``tiktok`` (``.pt`` features), ``kwai`` (``feat_v.pt`` only) or ``movielens``
            (``.npy`` features).
        text: Tiktok's ``feat_t.pt``: ``pairs`` (word ids) or ``dense``.
        short_names: name the evaluation files ``val.npy``/``test.npy``.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    offset = NUM_USERS if numbering == "offset" else 0
    train = np.array([(u, i + offset) for u, i in TRAIN + [DUPLICATE]], dtype=np.int64)
    np.save(folder / "train.npy", train)
    val_name, test_name = (
        ("val.npy", "test.npy") if short_names else ("val_full.npy", "test_full.npy")
    )
    np.save(folder / val_name, per_user_rows(VALID, offset, numpy_ints=False), allow_pickle=True)
    np.save(folder / test_name, per_user_rows(TEST, offset, numpy_ints=True), allow_pickle=True)
    (folder / "user_item_dict.npy").write_bytes(b"never read by the converter")
    if dataset == "movielens":
        np.save(folder / "FeatureVideo_normal.npy", features("visual"))
        np.save(folder / "FeatureAudio_avg_normal.npy", features("acoustic"))
        np.save(folder / "FeatureText_stl_normal.npy", features("textual"))
        return folder
    _save_tensor(folder / "feat_v.pt", features("visual"))
    if dataset == "tiktok":
        _save_tensor(folder / "feat_a.pt", features("acoustic"))
        _save_tensor(
            folder / "feat_t.pt", word_tensor() if text == "pairs" else features("textual")
        )
    return folder


def write_pairs(path: Path, pairs: list[tuple[int, int]], separator: str = ",") -> None:
    """Write headerless ``user,item`` lines."""
    path.write_text("".join(f"{u}{separator}{i}\n" for u, i in pairs), encoding="utf-8")


def make_slmrec(folder: Path, prefix: str = "tiny", dataset: str = "tiktok") -> Path:
    """Write an SLMRec release (train and test only).

    Args:
        folder: the folder to create.
        prefix: the ``<name>`` of the files.
        dataset: ``tiktok``, ``kwai`` or ``movielens`` feature files.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(folder / f"{prefix}.train", TRAIN + VALID + [DUPLICATE, SINGLE])
    write_pairs(folder / f"{prefix}.test", TEST)
    if dataset == "tiktok":
        _save_tensor(folder / f"{prefix}_visual_feat.pt", features("visual"))
        _save_tensor(folder / f"{prefix}_audio_feat.pt", features("acoustic"))
        _save_tensor(folder / f"{prefix}_textual_feat.pt", word_tensor())
    elif dataset == "kwai":
        _save_tensor(folder / f"{prefix}_feat_v.pt", features("visual"))
    else:
        np.save(folder / f"{prefix}_FeatureVideo_normal.npy", features("visual"))
        np.save(folder / f"{prefix}_FeatureAudio_avg_normal.npy", features("acoustic"))
        np.save(folder / f"{prefix}_FeatureText_stl_normal.npy", features("textual"))
    return folder


def coo(
    pairs: list[tuple[int, int]], shape: tuple[int, int] = (NUM_USERS, NUM_ITEMS)
) -> scipy.sparse.coo_matrix:
    """A users-by-items COO matrix with value 1 at each pair (duplicates kept as entries)."""
    users, items = zip(*pairs)
    return scipy.sparse.coo_matrix((np.ones(len(pairs)), (users, items)), shape=shape)


def make_mmssl(
    folder: Path,
    modalities: tuple[str, ...] = ("visual", "acoustic"),
    dtype: type = np.float16,
) -> Path:
    """Write an MMSSL/DiffMM release.

    Args:
        folder: the folder to create.
        modalities: the feature files to write (the others are absent).
        dtype: the feature dtype.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in (
        ("trnMat.pkl", TRAIN + [DUPLICATE]),
        ("valMat.pkl", VALID),
        ("tstMat.pkl", TEST),
    ):
        with open(folder / name, "wb") as stream:
            pickle.dump(coo(pairs), stream)
    files = {"visual": "image_feat.npy", "acoustic": "audio_feat.npy", "textual": "text_feat.npy"}
    for modality in modalities:
        np.save(folder / files[modality], features(modality).astype(dtype))
    return folder


MMREC_HEADER = "userID\titemID\trating\ttimestamp\tx_label"


def mmrec_lines() -> list[str]:
    """The data lines of the MMRec ``.inter`` file, ratings and timestamps derived from ids."""
    lines = []
    for label, pairs in enumerate((TRAIN + [DUPLICATE], VALID, TEST)):
        for user, item in pairs:
            lines.append(
                f"{user}\t{item}\t{(user + item) % 5 + 1}.0\t{1000 + 10 * user + item}\t{label}"
            )
    return lines


def make_mmrec(folder: Path, prefix: str = "baby") -> Path:
    """Write an MMRec release with rating and timestamp columns and both feature files.

    Args:
        folder: the folder to create.
        prefix: the ``<name>`` of the ``.inter`` file.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join([MMREC_HEADER] + mmrec_lines()) + "\n"
    (folder / f"{prefix}.inter").write_text(text, encoding="utf-8")
    np.save(folder / "image_feat.npy", features("visual"))
    np.save(folder / "text_feat.npy", features("textual"))
    return folder


def read_inter(path: Path) -> tuple[str, list[tuple[int, int]]]:
    """Read a written ``.inter`` file.

    Args:
        path: the file.

    Returns:
        Its header and its (user, item) pairs in file order.
    """
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [tuple(int(field) for field in line.split("\t")[:2]) for line in lines]
    return header, pairs


def read_ids(path: Path) -> list[int]:
    """Read a written ``.ids`` file."""
    return [int(line) for line in path.read_text(encoding="utf-8").splitlines()]
