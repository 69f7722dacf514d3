"""The restricted unpicklers load the allowed classes and refuse everything else unexecuted."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from atomic_data_tools import ConversionError
from atomic_data_tools.safe_pickle import COO_GLOBALS, load_coo, load_object_npy
from tests.atomic_fixtures import coo


class Touch:
    """An object whose unpickling would run ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


EVAL_PAYLOAD = b'cbuiltins\neval\n(S\'__import__("pathlib").Path(r"{marker}").touch()\'\ntR.'
"""A pickle that calls ``builtins.eval`` to create the marker file."""


def globals_of(data: bytes) -> set[str]:
    """The ``module.name`` pairs a pickle references (protocols below 4)."""
    import pickletools

    found = set()
    for opcode, argument, _ in pickletools.genops(io.BytesIO(data)):
        if opcode.name == "GLOBAL":
            found.add(argument.replace(" ", "."))
    return found


def test_coo_round_trip_and_legacy_module_name(tmp_path):
    matrix = coo([(0, 1), (3, 6)])
    data = pickle.dumps(matrix, protocol=3)
    assert "scipy.sparse._coo.coo_matrix" in globals_of(data)
    legacy = data.replace(b"scipy.sparse._coo\n", b"scipy.sparse.coo\n")
    assert "scipy.sparse.coo.coo_matrix" in globals_of(legacy)
    for name, payload in (("new.pkl", data), ("legacy.pkl", legacy)):
        (tmp_path / name).write_bytes(payload)
        loaded = load_coo(tmp_path / name)
        assert isinstance(loaded, scipy.sparse.coo_matrix)
        assert loaded.shape == (4, 7)
        assert sorted(zip(loaded.row.tolist(), loaded.col.tolist())) == [(0, 1), (3, 6)]


def test_coo_allow_list_is_exactly_the_documented_classes():
    names = {f"{module}.{name}" for module, name in COO_GLOBALS}
    assert names == {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "scipy.sparse.coo_matrix",
        "scipy.sparse.coo.coo_matrix",
        "scipy.sparse._coo.coo_matrix",
    }


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"cos\nsystem\n(S'touch {marker}'\ntR.", "os.system"),
        (EVAL_PAYLOAD, "builtins.eval"),
    ],
)
def test_tampered_pickle_is_refused_unexecuted(tmp_path, payload, named):
    marker = tmp_path / "marker"
    path = tmp_path / "trnMat.pkl"
    path.write_bytes(payload.replace(b"{marker}", str(marker).encode()))

    with pytest.raises(ConversionError) as caught:
        load_coo(path)
    message = str(caught.value)
    assert str(path) in message and "pickle global" in message
    assert f"got {named}; expected only " in message and "numpy.dtype" in message
    assert not marker.exists()


def test_eval_payload_is_live_under_plain_pickle(tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(EVAL_PAYLOAD.replace(b"{marker}", str(marker).encode()))
    assert marker.exists()


def test_coo_with_a_tampered_attribute_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "marker"
    matrix = coo([(0, 1)])
    matrix.data = Touch(marker)
    path = tmp_path / "valMat.pkl"
    path.write_bytes(pickle.dumps(matrix))

    with pytest.raises(
        ConversionError, match=r"valMat\.pkl: pickle global: got (posix|os)\.system"
    ):
        load_coo(path)
    assert not marker.exists()


def test_pickle_of_another_type_is_refused(tmp_path):
    path = tmp_path / "tstMat.pkl"
    path.write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(ConversionError, match=r"tstMat\.pkl: got a ndarray; expected a scipy"):
        load_coo(path)


def test_object_npy_loads_lists_and_numpy_ints(tmp_path):
    rows = np.empty(2, dtype=object)
    rows[0] = [0, 5, 6]
    rows[1] = [np.int64(1), np.int64(7)]
    np.save(tmp_path / "val_full.npy", rows, allow_pickle=True)
    loaded = load_object_npy(tmp_path / "val_full.npy")
    assert [list(map(int, row)) for row in loaded] == [[0, 5, 6], [1, 7]]


def test_tampered_object_npy_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "marker"
    rows = np.empty(1, dtype=object)
    rows[0] = Touch(marker)
    path = tmp_path / "test_full.npy"
    np.save(path, rows, allow_pickle=True)

    with pytest.raises(
        ConversionError, match=r"test_full\.npy: pickle global: got (posix|os)\.system"
    ):
        load_object_npy(path)
    assert not marker.exists()
