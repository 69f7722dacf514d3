"""Every release layout converts from a tiny fixture into the documented dataset folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from atomic_data_tools import ConvertOptions, convert
from tests.atomic_fixtures import (
    NUM_ITEMS,
    SINGLE,
    TEST,
    TRAIN,
    VALID,
    features,
    make_mmgcn,
    make_mmrec,
    make_mmssl,
    make_slmrec,
    read_ids,
    read_inter,
)

WRITTEN_ITEMS = list(range(6))
"""The items of the fixtures that appear in some split; item 6 only has features."""


def run(source: Path, out: Path, layout: str = "auto", **options: object) -> dict:
    """Convert ``source`` into ``out`` as dataset ``tiny`` and return the report."""
    return convert(source, ConvertOptions(dataset="tiny", **options), layout, out)


def load_yaml(out: Path) -> dict:
    """Parse the written ``tiny.yaml``."""
    return yaml.safe_load((out / "tiny.yaml").read_text(encoding="utf-8"))


def check_splits(out: Path, train: list, valid: list, test: list) -> None:
    """Check the three written interaction files hold exactly the given pairs, sorted."""
    for split, pairs in (("train", train), ("valid", valid), ("test", test)):
        header, written = read_inter(out / f"tiny.{split}.inter")
        assert header.startswith("user_id:token\titem_id:token")
        assert written == sorted(pairs)


def check_dense(out: Path, modality: str) -> None:
    """Check a written matrix: float32, one row per written item, row r is the item of line r."""
    matrix = np.load(out / f"tiny.{modality}.npy", allow_pickle=False)
    ids = read_ids(out / f"tiny.{modality}.ids")
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    assert ids == WRITTEN_ITEMS
    np.testing.assert_array_equal(matrix, features(modality)[ids])


def check_words(out: Path) -> None:
    """Check the token_seq field holds each item's word ids in source order."""
    header, *lines = (out / "tiny.item").read_text(encoding="utf-8").split("\n")[:-1]
    assert header == "item_id:token\twords:token_seq"
    assert lines == ["0\t5 7 2", "1\t", "2\t1", "3\t", "4\t", "5\t"]


def check_stats(stats: dict, out: Path, layout: str) -> None:
    """Check the report numbers shared by the fixtures that keep the release's validation."""
    assert json.loads((out / "tiny.stats.json").read_text(encoding="utf-8")) == stats
    assert stats["layout"] == layout
    assert (stats["users"], stats["items"], stats["interactions"]) == (4, 6, 15)
    assert {name: split["interactions"] for name, split in stats["splits"].items()} == {
        "train": 9,
        "valid": 3,
        "test": 3,
    }
    assert stats["splits"]["train"]["duplicates_removed"] == 1
    assert stats["dropped"]["interactions"]["count"] == 1
    assert stats["without_train_interactions"] == {
        "users": 0,
        "items": 0,
        "valid_users": 0,
        "test_users": 0,
    }


@pytest.mark.parametrize("numbering", ["offset", "zero"])
@pytest.mark.parametrize("short_names", [False, True])
def test_mmgcn_tiktok_word_pairs(tmp_path, caplog, numbering, short_names):
    source = make_mmgcn(tmp_path / "src", numbering=numbering, short_names=short_names)
    with caplog.at_level(logging.INFO, logger="atomic_data_tools"):
        stats = run(source, tmp_path / "out")
    out = tmp_path / "out"

    found = "numbered after the 4 users" if numbering == "offset" else "numbered from 0"
    assert found in caplog.text
    assert stats["notes"] == {
        "item_numbering": "after users" if numbering == "offset" else "from 0",
        "item_id_offset": 4 if numbering == "offset" else 0,
    }
    check_splits(out, TRAIN, VALID, TEST)
    check_stats(stats, out, "mmgcn")
    check_dense(out, "visual")
    check_dense(out, "acoustic")
    check_words(out)
    assert not (out / "tiny.textual.npy").exists()
    assert stats["modalities"]["textual"] == {
        "source": "token_seq",
        "file": "feat_t.pt",
        "field": "words",
        "vocabulary": 8,
        "pairs_written": 4,
        "items_with_features_without_interactions": 1,
        "items_with_interactions_without_features": 4,
    }
    assert stats["dropped"]["items"]["count"] == 1
    config = load_yaml(out)
    assert config["load_col"] == {"inter": ["user_id", "item_id"], "item": ["item_id", "words"]}
    assert config["modalities"] == [
        {"name": "visual", "source": "dense", "file": "tiny.visual.npy", "width": 4},
        {"name": "acoustic", "source": "dense", "file": "tiny.acoustic.npy", "width": 3},
        {"name": "textual", "source": "token_seq", "field": "words", "missing": "zero"},
    ]


def test_mmgcn_tiktok_dense_text(tmp_path):
    run(make_mmgcn(tmp_path / "src", text="dense"), tmp_path / "out")
    out = tmp_path / "out"

    check_dense(out, "textual")
    assert not (out / "tiny.item").exists()
    config = load_yaml(out)
    assert "item" not in config["load_col"]
    assert [m["name"] for m in config["modalities"]] == ["visual", "acoustic", "textual"]


@pytest.mark.parametrize(
    ("dataset", "modalities"),
    [("movielens", ["visual", "acoustic", "textual"]), ("kwai", ["visual"])],
)
def test_mmgcn_movielens_and_kwai(tmp_path, dataset, modalities):
    stats = run(make_mmgcn(tmp_path / "src", dataset=dataset), tmp_path / "out", layout="mmgcn")
    out = tmp_path / "out"

    check_splits(out, TRAIN, VALID, TEST)
    for modality in modalities:
        check_dense(out, modality)
    assert [m["name"] for m in load_yaml(out)["modalities"]] == modalities
    assert {name: m["width"] for name, m in stats["modalities"].items()} == {
        modality: features(modality).shape[1] for modality in modalities
    }


@pytest.mark.parametrize("dataset", ["tiktok", "kwai", "movielens"])
def test_slmrec_carves_validation_from_train(tmp_path, dataset):
    source = make_slmrec(tmp_path / "src", prefix="tiny", dataset=dataset)
    stats = run(source, tmp_path / "out", seed=7, val_ratio=0.3)
    out = tmp_path / "out"

    train = read_inter(out / "tiny.train.inter")[1]
    valid = read_inter(out / "tiny.valid.inter")[1]
    assert read_inter(out / "tiny.test.inter")[1] == sorted(TEST)
    assert sorted(train + valid) == sorted(set(TRAIN + VALID + [SINGLE]))
    assert not set(train) & set(valid)
    assert SINGLE in train
    # each of users 0..3 has 2 to 4 train interactions: round(0.3 * n) clipped to 1..n-1 is 1
    assert sorted(user for user, _ in valid) == [0, 1, 2, 3]
    assert stats["validation"] == {
        "source": "carved from tiny.train",
        "ratio": 0.3,
        "seed": 7,
        "users": 4,
        "single_interaction_users_kept_in_train": 1,
    }
    assert stats["splits"]["train"]["duplicates_removed"] == 1
    assert stats["users"] == 5
    if dataset == "tiktok":
        check_words(out)
    for modality in ("visual",) if dataset == "kwai" else ("visual", "acoustic"):
        check_dense(out, modality)


def test_slmrec_carving_depends_on_seed_only(tmp_path):
    source = make_slmrec(tmp_path / "src", prefix="other", dataset="kwai")
    valids = []
    for seed in (1, 1, 2, 3, 4):
        out = tmp_path / f"out{len(valids)}"
        run(source, out, prefix="other", seed=seed)
        valids.append(read_inter(out / "tiny.valid.inter")[1])
    assert valids[0] == valids[1]
    assert any(valid != valids[0] for valid in valids[2:])


@pytest.mark.parametrize(
    ("modalities", "dtype"),
    [((), np.float32), (("visual",), np.float16), (("acoustic", "textual"), np.float32)],
)
def test_mmssl_with_absent_features(tmp_path, modalities, dtype):
    stats = run(make_mmssl(tmp_path / "src", modalities, dtype), tmp_path / "out")
    out = tmp_path / "out"

    check_splits(out, TRAIN, VALID, TEST)
    check_stats(stats, out, "mmssl")
    assert stats["declared"] == {"users": 4, "items": NUM_ITEMS}
    for modality in modalities:
        check_dense(out, modality)
    for modality in {"visual", "acoustic", "textual"} - set(modalities):
        assert not (out / f"tiny.{modality}.npy").exists()
    assert [m["name"] for m in load_yaml(out)["modalities"]] == list(modalities)


def test_mmrec_with_rating_and_timestamp(tmp_path):
    stats = run(make_mmrec(tmp_path / "src", prefix="baby"), tmp_path / "out", prefix="baby")
    out = tmp_path / "out"

    check_splits(out, TRAIN, VALID, TEST)
    check_stats(stats, out, "mmrec")
    check_dense(out, "visual")
    check_dense(out, "textual")
    lines = (out / "tiny.test.inter").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert lines[1] == "0\t4\t5\t1004"
    config = load_yaml(out)
    assert config["load_col"]["inter"] == ["user_id", "item_id", "rating", "timestamp"]
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert [m["name"] for m in config["modalities"]] == ["visual", "textual"]


def test_yaml_keys_carry_type_comments(tmp_path):
    run(make_mmgcn(tmp_path / "src"), tmp_path / "out")
    lines = (tmp_path / "out" / "tiny.yaml").read_text(encoding="utf-8").splitlines()

    assert lines[0].startswith("# ")
    assert all(" # (" in line for line in lines[1:])
    config = load_yaml(tmp_path / "out")
    assert config["field_separator"] == "\t" and config["seq_separator"] == " "
    assert (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]) == ("user_id", "item_id")
