"""Restricted unpickling of the two pickled inputs that the converters accept.

Unpickling runs code: a pickle names callables (``module.name`` pairs) that the loader imports
and calls. The loaders below resolve names only through an explicit allow-list, so a pickle that
names anything else (``os.system``, ``builtins.eval``, ...) is refused before any of it runs.

* :func:`load_coo` reads the ``trnMat.pkl``/``valMat.pkl``/``tstMat.pkl`` matrices of the
  MMSSL/DiffMM release. Allowed: ``scipy.sparse.coo_matrix`` (under the module names
  ``scipy.sparse``, ``scipy.sparse.coo`` and ``scipy.sparse._coo`` that scipy versions write),
  ``numpy.ndarray``, ``numpy.dtype`` and ``numpy.core.multiarray._reconstruct``.
* :func:`load_object_npy` reads the object arrays of the MMGCN release (``val_full.npy``,
  ``test_full.npy``). Allowed: the three numpy names above and
  ``numpy.core.multiarray.scalar`` (numpy integers stored inside the rows).

The numpy names are also accepted under ``numpy._core``, where numpy 2 pickles the same objects.
Persistent ids are refused. The unpickled objects are checked for type and shape afterwards.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse
from numpy.core import multiarray

from atomic_data_tools.errors import ConversionError

MAX_ID = 2**31 - 1
"""The largest user or item index accepted, as in :mod:`atomic_data_tools.readers`."""

_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
}

COO_GLOBALS: dict[tuple[str, str], Any] = {
    **_ARRAY_GLOBALS,
    ("scipy.sparse", "coo_matrix"): scipy.sparse.coo_matrix,
    ("scipy.sparse.coo", "coo_matrix"): scipy.sparse.coo_matrix,
    ("scipy.sparse._coo", "coo_matrix"): scipy.sparse.coo_matrix,
}

OBJECT_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    **_ARRAY_GLOBALS,
    ("numpy.core.multiarray", "scalar"): multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): multiarray.scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed ``(module, name)`` pairs.

    Args:
        file: the binary stream positioned at the start of the pickle.
        allowed: the allow-list, mapping each ``(module, name)`` pair to the object it stands for.
        source: the file name used in error messages.
    """

    def __init__(self, file: BinaryIO, allowed: dict[tuple[str, str], Any], source: Path) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return the allow-listed object named ``module.name``, or refuse the pickle.

        Args:
            module: the module name written in the pickle.
            name: the attribute name written in the pickle.

        Returns:
            The allowed object.

        Raises:
            ConversionError: if the pair is not on the allow-list.
        """
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{mod}.{attr}" for mod, attr in self._allowed))
            raise ConversionError(
                self._source, "pickle global", f"{module}.{name}", f"only {allowed}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids, which would need an external object store.

        Args:
            pid: the persistent id found in the pickle.

        Raises:
            ConversionError: always.
        """
        raise ConversionError(
            self._source, "pickle persistent id", repr(pid), "a self-contained pickle"
        )


def restricted_load(stream: BinaryIO, allowed: dict[tuple[str, str], Any], source: Path) -> Any:
    """Unpickle one object from ``stream`` through :class:`RestrictedUnpickler`.

    Args:
        stream: the binary stream positioned at the start of the pickle.
        allowed: the allow-list of ``(module, name)`` pairs.
        source: the file name used in error messages.

    Returns:
        The unpickled object.

    Raises:
        ConversionError: if the pickle names a forbidden global or is malformed.
    """
    try:
        return RestrictedUnpickler(stream, allowed, source).load()
    except ConversionError:
        raise
    except Exception as err:
        raise ConversionError(
            source, "", f"an unreadable pickle ({err})", "a valid pickle"
        ) from err


def load_coo(path: Path) -> scipy.sparse.coo_matrix:
    """Load a pickled ``scipy.sparse.coo_matrix`` through the allow-list :data:`COO_GLOBALS`.

    Args:
        path: the ``.pkl`` file.

    Returns:
        A freshly built COO matrix with int64 coordinates, rebuilt from the checked arrays.

    Raises:
        ConversionError: if the pickle is refused or does not hold a valid COO matrix.
    """
    with open(path, "rb") as stream:
        obj = restricted_load(stream, COO_GLOBALS, path)
    if not isinstance(obj, scipy.sparse.coo_matrix):
        raise ConversionError(path, "", f"a {type(obj).__name__}", "a scipy.sparse.coo_matrix")
    state = vars(obj)
    shape = state.get("_shape")
    arrays = [state.get(key) for key in ("row", "col", "data")]
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(dim, int) and dim >= 0 for dim in shape)
    ):
        raise ConversionError(path, "shape", repr(shape), "a pair of non-negative integers")
    for key, array in zip(("row", "col", "data"), arrays):
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.hasobject:
            raise ConversionError(path, key, repr(type(array)), "a 1-D numeric numpy array")
    row, col, data = arrays
    if not len(row) == len(col) == len(data):
        lengths = f"{len(row)}, {len(col)}, {len(data)}"
        raise ConversionError(path, "row/col/data", f"lengths {lengths}", "three equal lengths")
    for key, array, size in (("row", row, shape[0]), ("col", col, shape[1])):
        if array.dtype.kind not in "iu":
            raise ConversionError(path, key, f"dtype {array.dtype}", "integer coordinates")
        limit = min(size, MAX_ID + 1)
        bad = (array < 0) | (array >= limit)
        if bad.any():
            pos = int(np.argmax(bad))
            expected = (
                f"0 <= index < {size} (shape)" if limit == size else f"0 <= index <= {MAX_ID}"
            )
            raise ConversionError(path, f"entry {pos}", f"{key} index {array[pos]}", expected)
    if data.dtype.kind not in "biuf":
        raise ConversionError(path, "data", f"dtype {data.dtype}", "numeric interaction values")
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            pos = int(np.argmax(bad))
            raise ConversionError(
                path, f"entry {pos}", f"value {data[pos]}", "a finite interaction value"
            )
    return scipy.sparse.coo_matrix(
        (data.copy(), (row.astype(np.int64), col.astype(np.int64))), shape=shape
    )


def load_object_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` file that may hold an object array, through :data:`OBJECT_ARRAY_GLOBALS`.

    Numeric arrays are read by ``numpy.load(..., allow_pickle=False)``; only object arrays go
    through the restricted unpickler.

    Args:
        path: the ``.npy`` file.

    Returns:
        The array.

    Raises:
        ConversionError: if the file is not a ``.npy`` file or its pickle is refused.
    """
    with open(path, "rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported format version {version}")
        except ValueError as err:
            raise ConversionError(
                path, "header", str(err), "a .npy file of version 1.0 or 2.0"
            ) from err
        if not dtype.hasobject:
            stream.seek(0)
            return np.load(stream, allow_pickle=False)
        array = restricted_load(stream, OBJECT_ARRAY_GLOBALS, path)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        got = f"a {type(array).__name__} of shape {getattr(array, 'shape', None)}"
        raise ConversionError(path, "", got, f"an array of shape {shape}, as in the header")
    return array
