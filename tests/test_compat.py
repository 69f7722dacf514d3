"""The pinned dependency set and the compatibility layer."""

import os
import pickle

import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recbole_slmrec import compat


def test_pinned_set_is_the_installed_one():
    pins = {}
    for line in open(compat.__file__.replace("recbole_slmrec/compat.py", "requirements.txt")):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    from importlib.metadata import version

    for name in ("recbole", "numpy", "scipy", "pandas"):
        assert version(name) == pins[name], f"{name} differs from requirements.txt"
    assert torch.__version__.split("+")[0] == pins["torch"]


def test_pinned_scipy_still_has_dok_update():
    assert hasattr(sp.dok_matrix, "_update")


def test_pinned_pandas_fills_a_column_in_place():
    frame = pd.DataFrame({"x": [1.0, None, 3.0]})
    compat.silence_known_warnings()
    frame["x"].fillna(value=0, inplace=True)
    assert frame["x"].tolist() == [1.0, 0.0, 3.0]


def test_pandas_3_is_refused(monkeypatch):
    monkeypatch.setattr(pd, "__version__", "3.0.1")
    with pytest.raises(compat.UnsupportedEnvironmentError, match="pandas 3.0.1 is installed"):
        compat.check_environment("SLMRec")


def test_scipy_without_dok_update_is_refused_for_lightgcn(monkeypatch):
    monkeypatch.setattr(compat, "_has_dok_update", lambda: False)
    with pytest.raises(compat.UnsupportedEnvironmentError, match="dok_matrix._update"):
        compat.check_environment("LightGCN")
    compat.check_environment("SLMRec")


def test_anomaly_detection_left_by_an_import_is_turned_off():
    torch.autograd.set_detect_anomaly(True)
    try:
        compat.disable_stray_anomaly_detection("SLMRec")
        assert not torch.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_checkpoints_refuse_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"state_dict": {}, "config": _Evil()}, f)
    with pytest.raises(pickle.UnpicklingError):
        compat.load_checkpoint(str(path))


def test_plain_config_values():
    from recbole.utils import ModelType

    plain = compat._plain({"a": ModelType.GENERAL, "b": (1, 2.0), "c": torch.device("cpu")})
    assert plain == {"a": "GENERAL", "b": [1, 2.0], "c": "cpu"}


def test_save_checkpoint_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"

    def broken_save(obj, file):
        with open(file, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        compat.save_checkpoint({"x": 1}, str(path))
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_dir_exists_before_recbole_looks_for_it(tmp_path, monkeypatch):
    # RecBole's ensure_dir checks, then creates: a second rank starting at the same moment fails
    # with FileExistsError. The plugin trainer creates the folder race-free first, so RecBole's
    # check always finds it.
    from recbole_slmrec.trainer import PluginTrainerMixin

    seen = []

    class Base:
        def __init__(self, config, model):
            seen.append(os.path.isdir(config["checkpoint_dir"]))

    class Trainer(PluginTrainerMixin, Base):
        pass

    target = tmp_path / "a" / "saved"
    Trainer({"checkpoint_dir": str(target), "single_spec": True}, model=None)
    assert seen == [True]
    compat.prepare_checkpoint_dir({"checkpoint_dir": str(target)})  # exists already: no error
    assert target.is_dir()
