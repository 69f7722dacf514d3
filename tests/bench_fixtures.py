"""A tiny pre-split multimodal dataset for the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_NAME = "tiny"
N_USERS = 20
N_ITEMS = 30
PER_USER = 10

TINY_YAML = f"""\
field_separator: "\\t"
seq_separator: " "
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
load_col:
  inter: [user_id, item_id]
benchmark_filename: [train, valid, test]
modalities:
  - name: visual
    source: dense
    file: {TINY_NAME}.visual.npy
    width: 8
  - name: textual
    source: dense
    file: {TINY_NAME}.textual.npy
    width: 6
"""


def write_tiny_dataset(data_path: Path, seed: int = 0) -> Path:
    """Write the ``tiny`` dataset folder under ``data_path``; returns the folder.

    Each of the 20 users has 10 distinct items out of 30: 8 in train, 1 in valid, 1 in test.
    Two dense modalities (widths 8 and 6) cover every item.
    """
    rng = np.random.default_rng(seed)
    folder = data_path / TINY_NAME
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for user in range(N_USERS):
        items = rng.choice(N_ITEMS, size=PER_USER, replace=False)
        parts = {"train": items[:-2], "valid": items[-2:-1], "test": items[-1:]}
        for part, chosen in parts.items():
            splits[part] += [f"u{user}\ti{item}" for item in chosen]
    for part, lines in splits.items():
        text = "user_id:token\titem_id:token\n" + "\n".join(lines) + "\n"
        (folder / f"{TINY_NAME}.{part}.inter").write_text(text, encoding="utf-8")
    ids = "\n".join(f"i{item}" for item in range(N_ITEMS)) + "\n"
    for modality, width in (("visual", 8), ("textual", 6)):
        matrix = rng.standard_normal((N_ITEMS, width)).astype(np.float32)
        np.save(folder / f"{TINY_NAME}.{modality}.npy", matrix)
        (folder / f"{TINY_NAME}.{modality}.ids").write_text(ids, encoding="utf-8")
    (folder / f"{TINY_NAME}.yaml").write_text(TINY_YAML, encoding="utf-8")
    return folder


def fake_result(
    valid: float, test: float, lr: float = 0.001, epochs: int = 2, seed: int = 0
) -> dict:
    """A result of ``runs.train`` with made-up figures: ``valid`` and ``test`` Recall@20."""
    history = [
        {
            "epoch": epoch,
            "train_loss": 1.0 / (epoch + 1),
            "train_time": 0.01,
            "valid_time": 0.02,
            "valid_score": valid,
            "valid_result": {"recall@20": valid},
        }
        for epoch in range(epochs)
    ]
    metrics = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "precision@20")
    return {
        "best_valid_score": valid,
        "best_valid_result": {metric: valid for metric in metrics},
        "test_result": {metric: test + 0.001 * seed for metric in metrics},
        "best_epoch": epochs - 1,
        "history": history,
        "model_file": None,
        "wall_time_s": 0.1,
        "peak_rss_mib": 100.0,
        "torch_threads": 1,
        "device": "cpu",
        "config": {"learning_rate": lr, "benchmark_filename": ["train", "valid", "test"]},
    }
