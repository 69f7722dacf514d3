"""Atomic writing of the dataset folder described in ``docs/DATA_FORMAT.md``.

Every file is written to a temporary file in the destination folder, flushed to disk and then
moved over its final name with :func:`os.replace`, so that an interrupted conversion never leaves
a half-written file; the temporary file is removed when writing fails. The content depends only
on the dataset, so converting the same release twice gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from atomic_data_tools.source import MODALITIES, PreparedDataset, SplitData, WordOutput

logger = logging.getLogger(__name__)

_CHUNK = 65536
"""Lines formatted and written at a time."""


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for binary writing; move it to ``path`` on success.

    Args:
        path: the final file name.

    Yields:
        The temporary file.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically.

    Args:
        path: the file.
        text: its content.
    """
    with atomic_open(path) as stream:
        stream.write(text.encode("utf-8"))


def write_lines(path: Path, header: str, rows: Iterator[list[str]], total: int) -> None:
    """Write a header and tab-joined rows atomically, with a progress bar.

    Args:
        path: the file.
        header: the first line, without its line end.
        rows: chunks of already formatted lines.
        total: the number of lines after the header, for the progress bar.
    """
    with (
        atomic_open(path) as stream,
        tqdm(total=total, desc=f"writing {path.name}", unit=" lines", disable=None) as bar,
    ):
        stream.write((header + "\n").encode("utf-8"))
        for chunk in rows:
            stream.write("".join(line + "\n" for line in chunk).encode("utf-8"))
            bar.update(len(chunk))


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an array with ``numpy.save`` (no pickle) atomically.

    Args:
        path: the file.
        array: the array.
    """
    with atomic_open(path) as stream:
        np.save(stream, np.ascontiguousarray(array), allow_pickle=False)


def format_floats(column: np.ndarray) -> list[str]:
    """Format a float column: as integers when every value is integral, else shortest repr.

    Args:
        column: ``(n,)`` float64 values.

    Returns:
        The formatted values.
    """
    if np.all(column == np.round(column)) and np.all(np.abs(column) < 2.0**53):
        return [str(value) for value in column.astype(np.int64).tolist()]
    return [repr(value) for value in column.tolist()]


def _inter_chunks(split: SplitData, value_columns: list[str]) -> Iterator[list[str]]:
    """Format the lines of an interaction file, a chunk at a time."""
    for start in range(0, len(split), _CHUNK):
        stop = start + _CHUNK
        columns = [split.users[start:stop].tolist(), split.items[start:stop].tolist()]
        columns = [[str(value) for value in column] for column in columns]
        columns += [format_floats(split.values[name][start:stop]) for name in value_columns]
        yield ["\t".join(fields) for fields in zip(*columns)]


def output_names(name: str) -> list[str]:
    """Every file name a conversion of dataset ``name`` may write.

    Args:
        name: the dataset name.

    Returns:
        The names, in writing order.
    """
    names = [f"{name}.{split}.inter" for split in ("train", "valid", "test")] + [f"{name}.item"]
    for modality in MODALITIES:
        names += [f"{name}.{modality}.npy", f"{name}.{modality}.ids"]
    return names + [f"{name}.yaml", f"{name}.stats.json"]


def dataset_yaml(prepared: PreparedDataset) -> str:
    """Render ``NAME.yaml``, each key with a trailing comment giving its type and meaning.

    A word-id modality in which some items of the dataset have no word gets ``missing: zero``:
    an empty bag of words is a valid text feature, so the runner must not refuse those items.

    Args:
        prepared: the dataset.

    Returns:
        The YAML text.
    """
    inter_columns = ["user_id", "item_id"] + prepared.value_columns
    entries: list[tuple[str, str]] = [
        ('field_separator: "\\t"', "(str) column separator of the atomic files"),
        ('seq_separator: " "', "(str) separator inside token_seq fields"),
        ("USER_ID_FIELD: user_id", "(str) user id field"),
        ("ITEM_ID_FIELD: item_id", "(str) item id field"),
        ("load_col:", "(dict) columns RecBole loads from each file"),
        (f"  inter: [{', '.join(inter_columns)}]", "(list) columns of the .inter files"),
    ]
    if prepared.words:
        fields = ", ".join(["item_id"] + [words.field for words in prepared.words])
        entries.append((f"  item: [{fields}]", f"(list) columns of {prepared.name}.item"))
    entries.append(
        ("benchmark_filename: [train, valid, test]", "(list) the pre-split files, in this order")
    )
    modalities = {feature.modality: feature for feature in prepared.dense + prepared.words}
    if not modalities:
        entries.append(("modalities: []", "(list) no feature modality in this release"))
    else:
        entries.append(("modalities:", "(list) ordered; the model derives its views from it"))
    for modality in MODALITIES:
        feature = modalities.get(modality)
        if feature is None:
            continue
        entries.append((f"  - name: {modality}", "(str) modality name, unique"))
        if isinstance(feature, WordOutput):
            entries += [
                ("    source: token_seq", "(str) dense | token_seq"),
                (
                    f"    field: {feature.field}",
                    f"(str) the token_seq field of {prepared.name}.item",
                ),
            ]
            empty = sum(1 for words in feature.words.values() if not words)
            if empty:
                entries.append(
                    ("    missing: zero", f"(str) error | zero; {empty} items have no word ids")
                )
        else:
            entries += [
                ("    source: dense", "(str) dense | token_seq"),
                (
                    f"    file: {prepared.name}.{modality}.npy",
                    "(str) path relative to the dataset folder",
                ),
                (f"    width: {feature.matrix.shape[1]}", "(int) expected number of columns"),
            ]
    column = max(len(key) for key, _ in entries) + 2
    title = (
        f"# RecBole configuration of the {prepared.name} dataset, written by atomic_data_tools "
        f"from the {prepared.source.layout} layout."
    )
    body = [f"{key:<{column}}# {comment}" for key, comment in entries]
    return "\n".join([title] + body) + "\n"


def write_dataset(folder: Path, prepared: PreparedDataset, stats: dict[str, object]) -> None:
    """Write the dataset folder; remove the files an earlier conversion left that this one lacks.

    Args:
        folder: the dataset folder, created if needed.
        prepared: the dataset.
        stats: the statistics report, saved as ``NAME.stats.json``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = prepared.name
    written: list[str] = []

    value_columns = prepared.value_columns
    header = "\t".join(
        ["user_id:token", "item_id:token"] + [f"{column}:float" for column in value_columns]
    )
    for split_name, split in prepared.splits.items():
        path = folder / f"{name}.{split_name}.inter"
        write_lines(path, header, _inter_chunks(split, value_columns), len(split))
        written.append(path.name)

    if prepared.words:
        item_header = "\t".join(
            ["item_id:token"] + [f"{words.field}:token_seq" for words in prepared.words]
        )
        lines = [
            "\t".join([str(item)] + [" ".join(map(str, w.words[item])) for w in prepared.words])
            for item in prepared.items.tolist()
        ]
        path = folder / f"{name}.item"
        write_lines(path, item_header, iter([lines]), len(lines))
        written.append(path.name)

    for dense in prepared.dense:
        matrix_path = folder / f"{name}.{dense.modality}.npy"
        ids_path = folder / f"{name}.{dense.modality}.ids"
        write_npy(matrix_path, dense.matrix)
        write_text(ids_path, "".join(f"{item}\n" for item in dense.ids.tolist()))
        written += [matrix_path.name, ids_path.name]

    write_text(folder / f"{name}.yaml", dataset_yaml(prepared))
    write_text(folder / f"{name}.stats.json", json.dumps(stats, indent=2) + "\n")
    written += [f"{name}.yaml", f"{name}.stats.json"]

    for stale in sorted(set(output_names(name)) - set(written)):
        path = folder / stale
        if path.exists():
            logger.warning("%s: removed, this conversion does not produce it", path)
            path.unlink()
    logger.info("wrote %s: %s", folder, ", ".join(written))
