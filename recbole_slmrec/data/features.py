"""Multimodal item features, aligned row by row to RecBole's internal item ids.

A dataset declares its modalities under the ``modalities`` key of its YAML (see
``docs/DATA_FORMAT.md``). Each one is either

* ``dense``: a float matrix in a ``.npy`` file, with a ``.ids`` file beside it naming the raw
  item token of every row. The matrix is memory-mapped and copied once, in chunks, into an
  array whose row ``i`` belongs to RecBole's item id ``i`` (row 0 is the padding item); or
* ``token_seq``: a ``token_seq`` field of the ``.item`` file (word ids per item), which RecBole
  has already remapped and aligned; models learn a bag-of-words embedding from it.

Every misalignment is an error that names the file, the line or key, the bad value and what was
expected: the model never trains on features that belong to other items.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from logging import getLogger

import numpy as np
import torch
from recbole.utils import FeatureType

SOURCES = ("dense", "token_seq")
#: Modality names: they become parts of module, buffer and file names.
NAME_PATTERN = re.compile(r"[\w-]+")
_RESERVED = torch.nn.ModuleDict()
MISSING_POLICIES = ("error", "zero")
CHUNK_ROWS = 65536
MAX_EXAMPLES = 5


class FeatureError(ValueError):
    """Item features that cannot be aligned to the dataset, or a bad modality declaration."""


@dataclass(frozen=True)
class Modality:
    """One declared modality.

    Attributes:
        name: unique name, e.g. ``visual``.
        source: ``dense`` or ``token_seq``.
        file: path of the ``.npy`` matrix (dense), absolute or relative to the dataset folder.
        field: the ``token_seq`` field of the ``.item`` file (token_seq).
        width: expected number of columns (dense), or the bag-of-words embedding width
            (token_seq); ``None`` takes the matrix width, or 128 for token_seq.
        missing: ``error`` or ``zero``, for dataset items that have no feature row.
    """

    name: str
    source: str
    file: str | None = None
    field: str | None = None
    width: int | None = None
    missing: str = "error"


@dataclass
class DenseFeature:
    """A dense modality: ``matrix`` is ``n_items x width`` float32, row 0 the padding item."""

    name: str
    matrix: np.ndarray
    missing: int = 0

    @property
    def width(self) -> int:
        return int(self.matrix.shape[1])


@dataclass
class TokenFeature:
    """A word-id modality: ``tokens`` is ``n_items x max_len`` int64, 0 the padding word."""

    name: str
    tokens: torch.Tensor
    vocab_size: int
    width: int
    missing: int = 0


@dataclass
class ItemFeatures:
    """All modalities of a dataset, in declaration order."""

    features: list[DenseFeature | TokenFeature] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def __iter__(self):
        return iter(self.features)


def parse_modalities(config) -> list[Modality]:
    """Read and check the ``modalities`` declaration of a configuration.

    Args:
        config: a RecBole ``Config`` (or a dict) holding ``modalities`` and optionally
            ``missing_feature_policy``.

    Returns:
        The modalities, in order; empty when none is declared.

    Raises:
        FeatureError: naming the bad entry and key.
    """
    declared = config["modalities"] if "modalities" in config else None
    if declared is None:
        return []
    if not isinstance(declared, (list, tuple)):
        raise FeatureError(
            f"config key `modalities` must be a list of mappings, got {type(declared).__name__}"
        )
    default_policy = (
        config["missing_feature_policy"] if "missing_feature_policy" in config else None
    ) or "error"
    if default_policy not in MISSING_POLICIES:
        raise FeatureError(
            f"config key `missing_feature_policy` is {default_policy!r}; "
            f"expected one of {', '.join(MISSING_POLICIES)}"
        )
    modalities, seen = [], set()
    for index, entry in enumerate(declared):
        where = f"modalities[{index}]"
        if not isinstance(entry, dict):
            raise FeatureError(f"{where} must be a mapping with name and source, got {entry!r}")
        unknown = set(entry) - {"name", "source", "file", "field", "width", "missing"}
        if unknown:
            raise FeatureError(
                f"{where} has unknown keys {sorted(unknown)}; "
                "expected name, source, file, field, width, missing"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise FeatureError(
                f"{where}.name is {name!r}; expected a non-empty name of letters, digits, "
                "'_' and '-'"
            )
        if hasattr(_RESERVED, name):
            raise FeatureError(
                f"{where}.name {name!r} is reserved: the models keep one module per modality "
                "in a torch ModuleDict, which has an attribute of that name; choose another"
            )
        if name in seen:
            raise FeatureError(f"{where}.name {name!r} is declared twice")
        seen.add(name)
        source = entry.get("source", "dense")
        if source not in SOURCES:
            raise FeatureError(
                f"{where}.source is {source!r}; expected one of {', '.join(SOURCES)}"
            )
        key = "file" if source == "dense" else "field"
        if not entry.get(key):
            raise FeatureError(f"{where} ({name}, {source}) needs the key `{key}`")
        width = entry.get("width")
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width <= 0
        ):
            raise FeatureError(f"{where}.width is {width!r}; expected a positive integer")
        missing = entry.get("missing", default_policy)
        if missing not in MISSING_POLICIES:
            raise FeatureError(
                f"{where}.missing is {missing!r}; expected one of {', '.join(MISSING_POLICIES)}"
            )
        modalities.append(
            Modality(name, source, entry.get("file"), entry.get("field"), width, missing)
        )
    return modalities


def _read_ids(path: str, matrix_path: str) -> list[str]:
    """The item tokens of a ``.ids`` file, one per line.

    A UTF-8 byte order mark, ``\r\n`` line ends and spaces or tabs around a token are
    ignored; an empty line is an error, since it would leave its row without an item.
    """
    if not os.path.isfile(path):
        raise FeatureError(
            f"feature file {matrix_path} has no id column: {path} is missing. Every feature "
            "matrix needs a .ids file beside it, one item token per line, line r naming row r."
        )
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise FeatureError(
            f"{path}: line {line} is not UTF-8 (byte {raw[error.start]:#04x}); the .ids file "
            "must be UTF-8 text"
        ) from None
    tokens = [line.strip() for line in text.splitlines()]
    for number, token in enumerate(tokens, start=1):
        if not token:
            raise FeatureError(
                f"{path}: line {number} is empty; every line names the item of the matrix row "
                f"with the same index (line r, row r - 1), so the file may hold no blank line"
            )
    return tokens


def _matrix_path(modality: Modality, data_dir: str) -> str:
    """The matrix file of a dense modality: absolute, or relative to the dataset folder.

    A relative path must stay inside the dataset folder, so that a copied folder never reads
    whatever lies next to it; files elsewhere need an absolute path. The check is on the path
    as written: a symbolic link inside the folder may point anywhere.
    """
    if os.path.isabs(modality.file):
        return modality.file
    folder = os.path.abspath(data_dir)
    path = os.path.normpath(os.path.join(folder, modality.file))
    if os.path.commonpath([folder, path]) != folder:
        raise FeatureError(
            f"modality {modality.name}: file {modality.file!r} lies outside the dataset folder "
            f"{folder}; a relative path must stay inside it (give an absolute path for a file "
            "elsewhere)"
        )
    return os.path.join(data_dir, modality.file)


def _handle_missing(
    modality: Modality,
    source: str,
    missing_ids: np.ndarray,
    dataset,
    unknown: list[str] | None = None,
) -> None:
    if len(missing_ids) == 0:
        return
    tokens = dataset.id2token(dataset.iid_field, missing_ids[:MAX_EXAMPLES])
    examples = ", ".join(repr(str(t)) for t in np.atleast_1d(tokens))
    message = (
        f"{len(missing_ids)} of {dataset.item_num - 1} items have no {modality.name} features "
        f"in {source} (for example items {examples})"
    )
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:MAX_EXAMPLES])
        message += (
            f", while {len(unknown)} of its rows name no item of the dataset (for example "
            f"{shown}): the .ids file must use the item tokens of the .inter files, exactly"
        )
    if modality.missing == "error":
        raise FeatureError(
            f"{message}. Add their rows, or set `missing: zero` on this modality (or "
            "`missing_feature_policy: zero`) to give them zero features."
        )
    getLogger(__name__).warning(f"{message}; they get zero features (missing: zero).")


def _load_dense(modality: Modality, data_dir: str, dataset) -> DenseFeature:
    path = _matrix_path(modality, data_dir)
    if not os.path.isfile(path):
        raise FeatureError(f"modality {modality.name}: feature file {path} does not exist")
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise FeatureError(
            f"{path}: not a plain numeric .npy matrix ({error}); feature files are never unpickled"
        ) from error
    if matrix.ndim != 2 or matrix.dtype.kind != "f":
        raise FeatureError(
            f"{path}: expected a 2-D float matrix, got shape {matrix.shape} dtype {matrix.dtype}"
        )
    if matrix.shape[1] == 0:
        raise FeatureError(f"{path}: the matrix has no columns (shape {matrix.shape})")
    if modality.width is not None and matrix.shape[1] != modality.width:
        raise FeatureError(
            f"{path}: widths disagree: the matrix has {matrix.shape[1]} columns, but modality "
            f"{modality.name} declares width {modality.width}"
        )
    ids_path = os.path.splitext(path)[0] + ".ids"
    tokens = _read_ids(ids_path, path)
    if len(tokens) != matrix.shape[0]:
        raise FeatureError(
            f"{ids_path} names {len(tokens)} items, but {path} has {matrix.shape[0]} rows"
        )

    # Map each row to an internal item id; rows of unknown items are ignored.
    token2id = dataset.field2token_id[dataset.iid_field]
    first_line: dict[str, int] = {}
    rows, targets, unknown = [], [], []
    for line, token in enumerate(tokens):
        if token in first_line:
            raise FeatureError(
                f"{ids_path}: item id {token!r} is duplicated, on lines {first_line[token] + 1} "
                f"and {line + 1}; each item may have one feature row"
            )
        first_line[token] = line
        item = token2id.get(token)
        if item is None or item == 0:
            unknown.append(token)
            continue
        rows.append(line)
        targets.append(item)
    rows_arr = np.asarray(rows, dtype=np.int64)
    targets_arr = np.asarray(targets, dtype=np.int64)
    if unknown:
        getLogger(__name__).info(
            f"{path}: {len(unknown)} feature rows belong to items not in the dataset; ignored"
        )

    # Copy the used rows, in chunks, into an array indexed by internal item id.
    aligned = np.zeros((dataset.item_num, matrix.shape[1]), dtype=np.float32)
    order = np.argsort(rows_arr, kind="stable")
    rows_arr, targets_arr = rows_arr[order], targets_arr[order]
    for start in range(0, len(rows_arr), CHUNK_ROWS):
        chunk_rows = rows_arr[start : start + CHUNK_ROWS]
        source = np.asarray(matrix[chunk_rows])
        with np.errstate(over="ignore"):
            chunk = source.astype(np.float32)
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            line = int(chunk_rows[bad])
            col = int(np.flatnonzero(~np.isfinite(chunk[bad]))[0])
            value = source[bad, col]
            why = (
                "features must be finite"
                if not np.isfinite(value)
                else "it is outside the float32 range, and features are stored as float32"
            )
            raise FeatureError(
                f"{path}: row {line} (item {tokens[line]!r}) holds {value} in column {col}; {why}"
            )
        aligned[targets_arr[start : start + CHUNK_ROWS]] = chunk

    has_row = np.zeros(dataset.item_num, dtype=bool)
    has_row[targets_arr] = True
    missing_ids = np.flatnonzero(~has_row[1:]) + 1
    _handle_missing(modality, path, missing_ids, dataset, unknown)
    return DenseFeature(modality.name, aligned, int(len(missing_ids)))


def _token_matrix(values) -> torch.Tensor | None:
    """The ``n_items x max_len`` word ids of a token_seq column, as a tensor or a DataFrame."""
    if isinstance(values, torch.Tensor):
        return values.long() if values.dim() == 2 else None
    sequences = [np.asarray(v, dtype=np.int64).ravel() for v in values]
    if any(seq.dtype.kind != "i" for seq in sequences):
        return None
    tokens = torch.zeros(len(sequences), max([len(s) for s in sequences] + [1]), dtype=torch.long)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = torch.from_numpy(seq)
    return tokens


def _load_tokens(modality: Modality, dataset) -> TokenFeature:
    field_name = modality.field
    item_feat = dataset.item_feat
    if item_feat is None or field_name not in item_feat.columns:
        raise FeatureError(
            f"modality {modality.name}: field {field_name!r} is not loaded from the .item file; "
            f"add it to load_col.item and check {dataset.dataset_name}.item has a "
            f"`{field_name}:token_seq` column"
        )
    tokens = None
    if dataset.field2type.get(field_name) == FeatureType.TOKEN_SEQ:
        tokens = _token_matrix(item_feat[field_name])
    if tokens is None or tokens.shape[0] != dataset.item_num:
        raise FeatureError(
            f"modality {modality.name}: field {field_name!r} of {dataset.dataset_name}.item must "
            "be a token_seq field"
        )
    empty = np.flatnonzero((tokens[1:] == 0).all(dim=1).numpy()) + 1
    _handle_missing(modality, f"field {field_name}", empty, dataset)
    return TokenFeature(
        modality.name, tokens, int(dataset.num(field_name)), modality.width or 128, int(len(empty))
    )


def load_item_features(config, dataset) -> ItemFeatures:
    """Load and align every declared modality.

    Args:
        config: the run's ``Config``; ``data_path`` is the dataset folder.
        dataset: the RecBole dataset whose item ids the rows must follow.

    Returns:
        The modalities in declaration order, each aligned to ``dataset``'s item ids.
    """
    logger = getLogger(__name__)
    result = ItemFeatures()
    for modality in parse_modalities(config):
        if modality.source == "dense":
            feature = _load_dense(modality, config["data_path"], dataset)
        else:
            feature = _load_tokens(modality, dataset)
        logger.info(
            f"modality {modality.name} ({modality.source}): width {feature.width}, "
            f"{dataset.item_num - 1 - feature.missing} of {dataset.item_num - 1} items covered"
        )
        result.features.append(feature)
    return result
