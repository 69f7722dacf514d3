"""A tiny pre-split multimodal dataset, and the RecBole objects built on it, for model tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_slmrec.config import Config

NAME = "mmtiny"
N_USERS = 6
N_ITEMS = 24

#: user -> items of each split; every user has 5-6 training items, 1 valid and 1 test item.
#: 24 items, so that every metric at 20 is defined.
TRAIN = {
    0: [0, 1, 2, 8, 14, 20],
    1: [1, 3, 4, 9, 15, 21],
    2: [2, 5, 10, 16, 22],
    3: [0, 6, 7, 11, 17, 23],
    4: [3, 5, 7, 12, 18],
    5: [4, 6, 0, 13, 19],
}
VALID = {0: [3], 1: [5], 2: [6], 3: [1], 4: [0], 5: [2]}
TEST = {0: [5], 1: [7], 2: [0], 3: [4], 4: [6], 5: [1]}

#: the modalities the folder can declare: dense widths, and one token_seq field.
DENSE_WIDTHS = {"visual": 5, "acoustic": 3}
TEXT_WIDTH = 4
VOCAB = 10

QUIET = {"show_progress": False, "state": "ERROR", "use_gpu": False, "seed": 2020}


def _modality_yaml(name: str) -> str:
    if name in DENSE_WIDTHS:
        return (
            f"  - name: {name}\n    source: dense\n    file: {NAME}.{name}.npy\n"
            f"    width: {DENSE_WIDTHS[name]}\n"
        )
    return f"  - name: {name}\n    source: token_seq\n    field: words\n    width: {TEXT_WIDTH}\n"


def write_dataset(data_path: Path, modalities: tuple[str, ...] = ("visual", "acoustic")) -> Path:
    """Write the ``mmtiny`` folder under ``data_path``, declaring ``modalities``; returns it.

    ``visual`` (width 5) and ``acoustic`` (width 3) are dense, ``textual`` is a token_seq
    field of the ``.item`` file (bag-of-words width 4). An empty tuple declares none.
    """
    rng = np.random.default_rng(0)
    folder = data_path / NAME
    folder.mkdir(parents=True, exist_ok=True)
    for part, split in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        lines = [f"u{u}\ti{i}" for u, items in split.items() for i in items]
        text = "user_id:token\titem_id:token\n" + "\n".join(lines) + "\n"
        (folder / f"{NAME}.{part}.inter").write_text(text, encoding="utf-8")
    ids = "".join(f"i{i}\n" for i in range(N_ITEMS))
    for name, width in DENSE_WIDTHS.items():
        matrix = rng.standard_normal((N_ITEMS, width)).astype(np.float32)
        np.save(folder / f"{NAME}.{name}.npy", matrix)
        (folder / f"{NAME}.{name}.ids").write_text(ids, encoding="utf-8")
    rows = [f"i{i}\t" + " ".join(f"w{w}" for w in rng.choice(VOCAB, 3)) for i in range(N_ITEMS)]
    item_text = "item_id:token\twords:token_seq\n" + "\n".join(rows) + "\n"
    (folder / f"{NAME}.item").write_text(item_text, encoding="utf-8")
    load_item = "  item: [item_id, words]\n" if "textual" in modalities else ""
    declared = "\n" + "".join(_modality_yaml(m) for m in modalities) if modalities else " []\n"
    yaml = (
        'field_separator: "\\t"\nseq_separator: " "\nUSER_ID_FIELD: user_id\n'
        "ITEM_ID_FIELD: item_id\nload_col:\n  inter: [user_id, item_id]\n"
        f"{load_item}benchmark_filename: [train, valid, test]\nmodalities:{declared}"
    )
    (folder / f"{NAME}.yaml").write_text(yaml, encoding="utf-8")
    return folder


def build(model: str, data_path: Path, **overrides):
    """Config, dataset and the three dataloaders of ``model`` on the folder under ``data_path``.

    Returns:
        ``(config, train_data, valid_data, test_data)``; the model is built from
        ``train_data._dataset``.
    """
    config = Config(model, NAME, config_dict={"data_path": str(data_path), **QUIET, **overrides})
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, train_data, valid_data, test_data
