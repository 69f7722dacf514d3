"""Shared fixtures: tiny multimodal datasets in the plugin's folder format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_TIKTOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktok-mmssl"


def write_dataset(
    root: Path,
    name: str = "tiny",
    n_users: int = 12,
    n_items: int = 30,
    dense: dict[str, int] | None = None,
    words: bool = False,
    seed: int = 0,
    per_user: int = 6,
    feature_items: dict[str, list[int]] | None = None,
    extra_yaml: str = "",
) -> Path:
    """Write a small pre-split dataset with dense (and optionally word-id) modalities.

    Users are ``u0..``, items ``i0..``. Each user has ``per_user`` distinct items: the first
    ``per_user - 2`` go to train, then one to valid and one to test.

    Args:
        root: the data_path.
        dense: modality name -> width; default ``{"visual": 5, "acoustic": 3}``.
        words: add a ``textual`` token_seq modality in the ``.item`` file.
        feature_items: modality name -> item indices that get a feature row (default all),
            written in shuffled order.

    Returns:
        The dataset folder.
    """
    dense = {"visual": 5, "acoustic": 3} if dense is None else dense
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        for k, i in enumerate(items):
            part = "train" if k < per_user - 2 else ("valid" if k == per_user - 2 else "test")
            splits[part].append((f"u{u}", f"i{i}"))
    for part, rows in splits.items():
        with open(folder / f"{name}.{part}.inter", "w", encoding="utf-8") as f:
            f.write("user_id:token\titem_id:token\n")
            f.writelines(f"{u}\t{i}\n" for u, i in rows)
    modalities = []
    for modality, width in dense.items():
        chosen = list((feature_items or {}).get(modality, range(n_items)))
        rng.shuffle(chosen)
        matrix = rng.normal(size=(len(chosen), width)).astype(np.float32)
        np.save(folder / f"{name}.{modality}.npy", matrix, allow_pickle=False)
        (folder / f"{name}.{modality}.ids").write_text("".join(f"i{i}\n" for i in chosen))
        modalities.append(
            f"  - {{name: {modality}, source: dense, file: {name}.{modality}.npy, width: {width}}}"
        )
    load_col = "  inter: [user_id, item_id]\n"
    if words:
        with open(folder / f"{name}.item", "w", encoding="utf-8") as f:
            f.write("item_id:token\twords:token_seq\n")
            for i in range(n_items):
                ids = rng.choice(20, size=rng.integers(1, 5), replace=False)
                f.write(f"i{i}\t{' '.join(f'w{w}' for w in ids)}\n")
        load_col += "  item: [item_id, words]\n"
        modalities.append("  - {name: textual, source: token_seq, field: words, width: 4}")
    yaml_text = (
        'field_separator: "\\t"\nseq_separator: " "\nUSER_ID_FIELD: user_id\n'
        f"ITEM_ID_FIELD: item_id\nload_col:\n{load_col}"
        "benchmark_filename: [train, valid, test]\n"
        + ("modalities:\n" + "\n".join(modalities) + "\n" if modalities else "")
        + extra_yaml
    )
    (folder / f"{name}.yaml").write_text(yaml_text)
    return folder


def quiet_config(tmp_path: Path, **overrides) -> dict:
    """Config overrides for fast, quiet test runs that write only under ``tmp_path``."""
    config = {
        "data_path": str(tmp_path),
        "checkpoint_dir": str(tmp_path / "saved"),
        "show_progress": False,
        "state": "WARNING",
        "epochs": 1,
        "train_batch_size": 16,
        "eval_batch_size": 64,
        "embedding_size": 8,
        "n_layers": 2,
        "use_gpu": False,
        "reproducibility": True,
        "seed": 7,
    }
    config.update(overrides)
    return config


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A tiny dataset with two dense modalities; returns its data_path."""
    write_dataset(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch):
    """Run every test in its own folder, so RecBole's log/ and saved/ stay out of the repo."""
    monkeypatch.chdir(tmp_path)
