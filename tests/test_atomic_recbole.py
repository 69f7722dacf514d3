"""RecBole itself loads converted folders; the real Tiktok copy converts to its README numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from recbole.config import Config
from recbole.data import create_dataset, data_preparation

from atomic_data_tools import ConvertOptions, convert
from tests.atomic_fixtures import make_mmgcn, make_mmrec, make_slmrec

REAL_TIKTOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktok-mmssl"


def recbole_splits(data_path: Path, name: str) -> tuple[object, list[int]]:
    """Load ``data_path/name`` with RecBole's BPR settings plus the folder's own YAML."""
    settings = yaml.safe_load((data_path / name / f"{name}.yaml").read_text(encoding="utf-8"))
    settings.update({"data_path": str(data_path), "use_gpu": False, "show_progress": False})
    config = Config(model="BPR", dataset=name, config_dict=settings)
    dataset = create_dataset(config)
    loaders = data_preparation(config, dataset)
    return dataset, [len(loader.dataset) for loader in loaders]


@pytest.mark.parametrize("layout", ["mmgcn", "slmrec", "mmrec"])
def test_recbole_loads_a_converted_folder(tmp_path, layout):
    source = {
        "mmgcn": lambda: make_mmgcn(tmp_path / "src"),
        "slmrec": lambda: make_slmrec(tmp_path / "src", prefix="tiny"),
        "mmrec": lambda: make_mmrec(tmp_path / "src", prefix="tiny"),
    }[layout]()
    stats = convert(source, ConvertOptions(dataset="tiny"), layout, tmp_path / "data" / "tiny")

    dataset, sizes = recbole_splits(tmp_path / "data", "tiny")
    assert sizes == [stats["splits"][name]["interactions"] for name in ("train", "valid", "test")]
    assert dataset.user_num - 1 == stats["users"] and dataset.item_num - 1 == stats["items"]
    if layout == "mmgcn":
        words = dataset.item_feat["words"][dataset.token2id("item_id", "0")]
        assert dataset.id2token("words", words[words > 0]).tolist() == ["5", "7", "2"]
    if layout == "mmrec":
        assert "rating" in dataset.inter_feat and "timestamp" in dataset.inter_feat


def test_real_tiktok_mmssl(tmp_path):
    if not REAL_TIKTOK.is_dir():
        pytest.skip("real Tiktok (MMSSL layout) data: ../shared/data/tiktok-mmssl is absent")
    out = tmp_path / "data" / "tiktok"
    stats = convert(REAL_TIKTOK, ConvertOptions(dataset="tiktok"), "auto", out)

    assert stats["layout"] == "mmssl"
    assert (stats["users"], stats["items"]) == (9308, 6710)
    assert stats["declared"] == {"users": 9308, "items": 6710}
    assert [stats["splits"][name]["interactions"] for name in ("train", "valid", "test")] == [
        59541,
        3051,
        6130,
    ]
    assert stats["without_train_interactions"]["users"] == 10
    assert stats["without_train_interactions"]["test_users"] == 5
    assert stats["without_train_interactions"]["items"] == 465
    assert {name: m["width"] for name, m in stats["modalities"].items()} == {
        "visual": 128,
        "acoustic": 128,
    }
    assert stats["dropped"]["interactions"]["count"] == 0
    assert json.loads((out / "tiktok.stats.json").read_text(encoding="utf-8")) == stats
    config = yaml.safe_load((out / "tiktok.yaml").read_text(encoding="utf-8"))
    assert [m["name"] for m in config["modalities"]] == ["visual", "acoustic"]

    _, sizes = recbole_splits(tmp_path / "data", "tiktok")
    assert sizes == [59541, 3051, 6130]
