"""The offline demo dataset built from RecBole's bundled MovieLens-100k."""

import filecmp

import numpy as np
import pandas as pd
import pytest
import yaml

from recbole_slmrec.data.demo import DEMO_NAME, prepare_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return prepare_demo(DEMO_NAME, str(tmp_path_factory.mktemp("data")))


def read(folder, part):
    return pd.read_csv(f"{folder}/{DEMO_NAME}.{part}.inter", sep="\t", dtype=str)


def test_split_is_disjoint_complete_and_per_user(demo):
    parts = {p: read(demo, p) for p in ("train", "valid", "test")}
    assert sum(len(f) for f in parts.values()) == 100_000
    keys = {p: set(zip(f["user_id:token"], f["item_id:token"])) for p, f in parts.items()}
    assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"]
    assert not keys["valid"] & keys["test"]
    counts = {p: f.groupby("user_id:token").size() for p, f in parts.items()}
    ratio = counts["test"] / (counts["train"] + counts["valid"] + counts["test"])
    assert ratio.between(0.05, 0.15).all() and len(counts["train"]) == 943


def test_features_cover_items_with_ids(demo):
    config = yaml.safe_load(open(f"{demo}/{DEMO_NAME}.yaml"))
    assert [m["name"] for m in config["modalities"]] == ["textual", "knowledge"]
    for modality in config["modalities"]:
        matrix = np.load(f"{demo}/{modality['file']}")
        ids = open(f"{demo}/{modality['file'][:-4]}.ids").read().split()
        assert matrix.shape == (len(ids), modality["width"]) and matrix.dtype == np.float32
        assert np.isfinite(matrix).all() and len(set(ids)) == len(ids)
    assert len(open(f"{demo}/{DEMO_NAME}.textual.ids").read().split()) == 1682
    assert len(open(f"{demo}/{DEMO_NAME}.knowledge.ids").read().split()) < 1682
    assert config["modalities"][1]["missing"] == "zero"


def test_rebuild_is_identical(demo, tmp_path):
    again = prepare_demo(DEMO_NAME, str(tmp_path))
    for name in ("train.inter", "textual.npy", "knowledge.npy", "knowledge.ids", "yaml"):
        assert filecmp.cmp(f"{demo}/{DEMO_NAME}.{name}", f"{again}/{DEMO_NAME}.{name}", False)


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    import recbole_slmrec.data.demo as demo_module

    def fail(folder):
        open(f"{folder}/partial", "w").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "_write", fail)
    with pytest.raises(KeyboardInterrupt):
        prepare_demo(DEMO_NAME, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_name_avoids_recbole_ml100k_quirk():
    assert DEMO_NAME != "ml-100k"
