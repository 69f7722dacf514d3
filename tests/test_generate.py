"""The synthetic data generator: exact statistics, power-law degrees, the MMGCN layout."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from atomic_data_tools.pipeline import convert
from atomic_data_tools.source import ConvertOptions
from recbole_slmrec.perf import generate as gen

SMALL = gen.Spec(users=30, items=50, interactions=400, widths={"visual": 6, "acoustic": 3})


def read_release(folder: Path) -> dict[str, np.ndarray]:
    """The (user, item) pairs of each split of a generated release."""
    splits = {"train": np.load(folder / "train.npy")}
    for name, file in (("valid", "val_full.npy"), ("test", "test_full.npy")):
        rows = np.load(folder / file, allow_pickle=True)
        splits[name] = np.array([(row[0], item) for row in rows for item in row[1:]])
    return splits


@pytest.mark.parametrize("feature_format", ["npy", "pt"])
def test_release_has_the_statistics_and_converts(tmp_path: Path, feature_format: str):
    spec = replace(SMALL, feature_format=feature_format)
    description = gen.generate(spec, tmp_path / "raw")

    splits = read_release(tmp_path / "raw")
    pairs = np.concatenate(list(splits.values()))
    assert len(pairs) == len(np.unique(pairs, axis=0)) == spec.interactions
    assert set(pairs[:, 0]) == set(range(spec.users))
    assert set(pairs[:, 1]) == set(range(spec.users, spec.users + spec.items))
    for split in splits.values():
        assert set(split[:, 0]) == set(range(spec.users))  # every user in every split
    assert description["splits"] == {name: len(split) for name, split in splits.items()}
    files = gen.FEATURE_FILES[feature_format]
    assert description["files"][3:] == [files["visual"], files["acoustic"]]

    stats = convert(tmp_path / "raw", ConvertOptions(dataset="syn"), output_dir=tmp_path / "syn")
    assert stats["splits"]["train"]["interactions"] == description["splits"]["train"]
    assert stats["splits"]["test"]["users"] == spec.users
    assert {name: m["width"] for name, m in stats["modalities"].items()} == spec.widths
    visual = np.load(tmp_path / "syn" / "syn.visual.npy")
    assert visual.shape == (spec.items, 6)
    assert np.allclose(np.linalg.norm(visual, axis=1), 1.0, atol=1e-5)


def test_degrees_follow_a_power_law_whose_exponent_sets_the_tail(tmp_path: Path):
    spec = gen.Spec(users=2000, items=3000, interactions=40_000)
    heavy = gen.sample_interactions(replace(spec, exponent=2.0), np.random.default_rng(0))[2]
    light = gen.sample_interactions(replace(spec, exponent=3.0), np.random.default_rng(0))[2]

    assert heavy.sum() == light.sum() == spec.interactions
    assert heavy.min() >= gen.MIN_USER_DEGREE and heavy.max() <= spec.items // 2
    assert heavy.max() > 20 * np.median(heavy)
    assert heavy.max() > 3 * light.max()


def test_the_seed_decides_everything(tmp_path: Path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        gen.generate(replace(SMALL, seed=seed), tmp_path / name)
    same = [np.load(tmp_path / name / "train.npy") for name in "ab"]
    other = np.load(tmp_path / "c" / "train.npy")
    assert np.array_equal(*same)
    assert not np.array_equal(same[0], other)
    assert (tmp_path / "a" / "FeatureVideo_normal.npy").read_bytes() == (
        tmp_path / "b" / "FeatureVideo_normal.npy"
    ).read_bytes()


def test_presets_scale_by_fraction():
    kwai = gen.scale(gen.PRESETS["kwai"], 0.1)
    assert (kwai.users, kwai.items, kwai.interactions) == (2261, 32951, round(166_430.5))
    assert kwai.widths == {"visual": 2048}
    assert gen.PRESETS["movielens"].widths == {"visual": 2048, "acoustic": 128, "textual": 100}
    with pytest.raises(ValueError, match="fraction"):
        gen.scale(kwai, 1.5)


def test_impossible_statistics_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="expected 90..750"):
        gen.generate(replace(SMALL, interactions=80), tmp_path)
    with pytest.raises(ValueError, match="exponent"):
        gen.check(replace(SMALL, exponent=1.0))
    with pytest.raises(ValueError, match="widths"):
        gen.check(replace(SMALL, widths={"smell": 3}))


def test_command_line_writes_a_kwai_fraction(tmp_path: Path, capsys):
    code = gen.main(
        ["--preset", "kwai", "--fraction", "0.001", "--out", str(tmp_path), "--seed", "3"]
    )

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["spec"]["users"] == 23 and printed["files"][-1] == "feat_v.pt"
    visual = torch.load(tmp_path / "feat_v.pt", weights_only=True)
    assert visual.shape == (330, 2048) and visual.dtype == torch.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "feat_v.pt",
        "generator.json",
        "test_full.npy",
        "train.npy",
        "val_full.npy",
    ]
    with pytest.raises(SystemExit):
        gen.main(["--users", "10", "--out", str(tmp_path)])
