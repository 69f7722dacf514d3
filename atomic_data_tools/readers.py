"""Checked loaders for the file kinds the releases use: ``.npy``, ``.pt`` and id text.

Saved tensors are read with ``torch.load(..., weights_only=True)`` and numpy files with
``allow_pickle=False``; pickled inputs go through :mod:`atomic_data_tools.safe_pickle` instead.
Every check raises :class:`~atomic_data_tools.errors.ConversionError` naming the file and place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.source import MODALITIES, DenseFeature, WordFeature

MAX_ID = 2**31 - 1
"""The largest id accepted for users, items and words."""

_SEPARATOR_NAMES = {"\t": "a tab", ",": "a comma", ";": "a semicolon", " ": "a space", "|": "a bar"}


@dataclass(frozen=True)
class FeatureFile:
    """A file name under which a release may store one modality.

    Args:
        modality: one of :data:`~atomic_data_tools.source.MODALITIES`.
        name: the file name inside the release folder.
        word_pairs: whether the file may hold a ``2 x N`` integer tensor of (item, word id) pairs
            instead of a dense matrix.
    """

    modality: str
    name: str
    word_pairs: bool = False


def require_file(folder: Path, name: str, expected: str) -> Path:
    """Return ``folder / name``, or refuse the release if that file is absent.

    Args:
        folder: the release folder.
        name: the file name.
        expected: what the file should hold, for the message.

    Returns:
        The file path.

    Raises:
        ConversionError: if the file does not exist.
    """
    path = folder / name
    if not path.is_file():
        raise ConversionError(folder, name, "no such file", expected)
    return path


def load_npy(path: Path) -> np.ndarray:
    """Load a numeric ``.npy`` array with ``allow_pickle=False``.

    Args:
        path: the file.

    Returns:
        The array.

    Raises:
        ConversionError: if the file is not a numeric ``.npy`` array.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ConversionError(
            path, "", f"an unreadable array ({err})", "a numeric .npy array"
        ) from err
    if not isinstance(array, np.ndarray):
        array.close()
        raise ConversionError(path, "", "an .npz archive", "a numeric .npy array")
    return array


def load_tensor(path: Path) -> np.ndarray:
    """Load a tensor saved by ``torch.save`` with ``weights_only=True``.

    Torch is imported here rather than at module level, so that ``--help`` and the other layouts
    stay fast.

    Args:
        path: the ``.pt`` file.

    Returns:
        The tensor as a numpy array (bfloat16 is widened to float32).

    Raises:
        ConversionError: if the file does not hold one tensor.
    """
    import torch

    if path.stat().st_size == 0:
        raise ConversionError(path, "", "an empty file", "a saved tensor")
    with open(path, "rb") as stream:
        if stream.read(6) == b"\x93NUMPY":
            raise ConversionError(
                path, "", "a numpy .npy file under a .pt name", "a tensor saved by torch.save"
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConversionError(
            path, "", f"an unreadable file ({_torch_reason(err)})", "a saved tensor"
        ) from err
    if not isinstance(obj, torch.Tensor):
        raise ConversionError(path, "", f"a {type(obj).__name__}", "a single saved tensor")
    if obj.is_quantized or obj.is_meta or obj.dtype not in _tensor_dtypes():
        kind = "a quantized" if obj.is_quantized else "a data-less meta" if obj.is_meta else "a"
        raise ConversionError(
            path, "", f"{kind} tensor of dtype {obj.dtype}", "a float, integer or bool tensor"
        )
    if obj.layout != torch.strided:
        obj = obj.to_dense()
    if obj.dtype == torch.bfloat16:
        obj = obj.float()
    return obj.detach().numpy()


def _tensor_dtypes() -> frozenset:
    import torch

    return frozenset(
        {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool, torch.uint8}
        | {torch.int8, torch.int16, torch.int32, torch.int64}
    )


def _torch_reason(err: Exception) -> str:
    """One line saying why ``torch.load(..., weights_only=True)`` failed.

    Torch's refusal of a pickled object spans several paragraphs and advises loading the file
    with ``weights_only=False``, which would run the pickle; only the line that names the
    refused object is kept.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        named = [line for line in lines[1:] if "GLOBAL" in line]
        if named:
            return f"it holds pickled objects besides tensors, refused unread: {named[0]}"
        detail = next((line for line in lines[1:] if "Unsupported" in line), lines[0])
        return f"not a file written by torch.save: {detail}"
    text = " ".join(lines) or type(err).__name__
    if len(text) > 200 and ". " in text:
        text = text.split(". ")[0]
    return text if len(text) <= 200 else text[:197] + "..."


def load_array(path: Path) -> np.ndarray:
    """Load a ``.npy`` or ``.pt`` file, choosing the loader by suffix.

    Args:
        path: the file.

    Returns:
        The array.
    """
    return load_tensor(path) if path.suffix == ".pt" else load_npy(path)


def dense_matrix(array: np.ndarray, path: Path) -> np.ndarray:
    """Check a dense feature matrix and return it as C-ordered float32.

    Args:
        array: the loaded array.
        path: its file, for messages.

    Returns:
        The ``(rows, width)`` float32 matrix.

    Raises:
        ConversionError: if it is not a 2-D float matrix of finite values.
    """
    if array.ndim != 2 or array.dtype.kind != "f":
        got = f"a {array.ndim}-D {array.dtype} array of shape {array.shape}"
        raise ConversionError(path, "", got, "a 2-D float matrix, one row per item")
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise ConversionError(
            path,
            f"row {row}, column {column}",
            repr(float(array[row, column])),
            "finite feature values (no NaN or infinity, also after conversion to float32)",
        )
    return matrix


def check_ids(
    values: np.ndarray, path: Path | str, what: str, where: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """Check that ``values`` are integer ids in ``0..MAX_ID`` and return them as int64.

    Args:
        values: the ids.
        path: their file, for messages.
        what: what the ids are (``user``, ``item``, ...).
        where: what indexes them in the file (``row``, ``column``, ...).
        rows: the place of each id in the file; defaults to its position.

    Returns:
        The ``(n,)`` int64 ids.

    Raises:
        ConversionError: if the dtype is not integer or an id is out of range.
    """
    if values.dtype.kind not in "iu":
        raise ConversionError(path, "", f"{what} ids of dtype {values.dtype}", "integer ids")
    flat = values.ravel()
    bad = (flat < 0) | (flat > MAX_ID)
    if bad.any():
        pos = int(np.argmax(bad))
        place = int(rows[pos]) if rows is not None else pos
        raise ConversionError(
            path, f"{where} {place}", f"{what} id {flat[pos]}", f"0 <= id <= {MAX_ID}"
        )
    return flat.astype(np.int64)


def parse_id(text: str, path: Path, where: str, what: str) -> int:
    """Parse one decimal id of a text file.

    Args:
        text: the field.
        path: the file, for messages.
        where: the place of the field, e.g. ``"line 4"``.
        what: what the id is (``user``, ``item``).

    Returns:
        The id.

    Raises:
        ConversionError: if the field is not a non-negative decimal integer in range.
    """
    if not (text.isascii() and text.isdigit()):
        raise ConversionError(path, where, f"{what} id {text!r}", "a non-negative decimal integer")
    value = int(text)
    if value > MAX_ID:
        raise ConversionError(path, where, f"{what} id {value}", f"0 <= id <= {MAX_ID}")
    return value


def split_fields(line: str, separator: str, width: int, path: Path, where: str) -> list[str]:
    """Split one text line into exactly ``width`` fields.

    Args:
        line: the line, without its line end.
        separator: the expected separator.
        width: the expected number of fields.
        path: the file, for messages.
        where: the place of the line, e.g. ``"line 4"``.

    Returns:
        The fields.

    Raises:
        ConversionError: if the line has another number of fields; the message names the
            separator the line seems to use instead.
    """
    fields = line.split(separator)
    if len(fields) == width:
        return fields
    others = [name for sep, name in _SEPARATOR_NAMES.items() if sep != separator and sep in line]
    hint = f" (it seems to use {others[0]})" if others else ""
    shown = line if len(line) <= 60 else line[:57] + "..."
    raise ConversionError(
        path,
        where,
        f"{shown!r} with {len(fields)} field(s){hint}",
        f"{width} fields separated by {_SEPARATOR_NAMES[separator]}",
    )


def load_features(
    folder: Path, candidates: list[FeatureFile]
) -> tuple[list[DenseFeature], list[WordFeature], list[str]]:
    """Load whichever of the candidate feature files a release folder holds.

    Args:
        folder: the release folder.
        candidates: the file names each modality may have in this layout.

    Returns:
        The dense modalities and the word-pair modalities (each in modality order), and the names
        of the files read.

    Raises:
        ConversionError: if a modality is present under two names or a file fails its checks.
    """
    dense: list[DenseFeature] = []
    words: list[WordFeature] = []
    files: list[str] = []
    for modality in MODALITIES:
        present = [c for c in candidates if c.modality == modality and (folder / c.name).is_file()]
        if len(present) > 1:
            names = " and ".join(c.name for c in present)
            raise ConversionError(
                folder, f"{modality} features", f"two files ({names})", "one file per modality"
            )
        if not present:
            continue
        candidate = present[0]
        path = folder / candidate.name
        array = load_array(path)
        files.append(candidate.name)
        if candidate.word_pairs and array.dtype.kind in "iub":
            items, word_ids = word_pairs(array, path)
            words.append(WordFeature(modality, candidate.name, items, word_ids))
        else:
            dense.append(DenseFeature(modality, candidate.name, dense_matrix(array, path)))
    return dense, words, files


def word_pairs(array: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Check a ``2 x N`` integer array of (item, word id) pairs.

    Args:
        array: the loaded array; row 0 holds item ids, row 1 word ids.
        path: its file, for messages.

    Returns:
        The ``(N,)`` int64 item ids and word ids.

    Raises:
        ConversionError: if the shape, dtype or an id is wrong.
    """
    if array.ndim != 2 or array.shape[0] != 2 or array.dtype.kind not in "iu":
        got = f"a {array.dtype} array of shape {array.shape}"
        raise ConversionError(
            path, "", got, "a float matrix or a 2 x N integer tensor of (item, word id) pairs"
        )
    items = check_ids(array[0], path, "item", "column")
    word_ids = check_ids(array[1], path, "word", "column")
    return items, word_ids
