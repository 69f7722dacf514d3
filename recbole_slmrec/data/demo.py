"""The offline demo dataset ``ml-100k-mm``: MovieLens-100k with two content modalities.

RecBole ships MovieLens-100k inside its package (interactions, an ``.item`` file with titles,
release years and genres, and ``.kg`` / ``.link`` files linking movies to Freebase entities).
This module turns that copy into a multimodal dataset in the plugin's format:

* ``textual``: TF-IDF of each movie's title words, genres and release year, reduced by
  truncated SVD;
* ``knowledge``: TF-IDF of each movie's knowledge-graph neighbourhood (one token per
  ``relation, neighbour`` pair, in either direction), reduced the same way. Movies without a
  link or without triples have no row and get zero features (``missing: zero``).

The interactions are split once, per user, 8:1:1 at random with a fixed seed, and written as
pre-split files, so that every model and every seed sees the same split.

The dataset is named ``ml-100k-mm``, not ``ml-100k``: RecBole forces ``data_path`` to its
bundled copy whenever a dataset is named ``ml-100k``, which would hide these files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import defaultdict
from logging import getLogger

import numpy as np
import pandas as pd
import recbole
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

DEMO_NAME = "ml-100k-mm"
DEMO_DATASETS = (DEMO_NAME,)
SPLIT_SEED = 2020
SPLIT_RATIOS = (0.8, 0.1, 0.1)
TEXT_WIDTH = 64
KG_WIDTH = 64

DATASET_YAML = f"""\
# MovieLens-100k with textual and knowledge-graph item features, built by recbole_slmrec.
field_separator: "\\t"            # (str) column separator of the atomic files
seq_separator: " "               # (str) separator inside token_seq fields
USER_ID_FIELD: user_id           # (str) user id field
ITEM_ID_FIELD: item_id           # (str) item id field
RATING_FIELD: rating             # (str) rating field (kept, unused by implicit models)
TIME_FIELD: timestamp            # (str) interaction time field
load_col:                        # (dict) columns loaded from each atomic file
  inter: [user_id, item_id, rating, timestamp]
benchmark_filename: [train, valid, test]  # (list) pre-split files: {DEMO_NAME}.<part>.inter
modalities:                      # (list) item modalities, in view order
  - name: textual                # (str) TF-IDF + SVD of title, genres and year
    source: dense                # (str) dense matrix with an .ids file
    file: {DEMO_NAME}.textual.npy  # (str) matrix, relative to this folder
    width: {TEXT_WIDTH}                    # (int) columns
  - name: knowledge              # (str) TF-IDF + SVD of linked knowledge-graph entities
    source: dense
    file: {DEMO_NAME}.knowledge.npy
    width: {KG_WIDTH}
    missing: zero                # (str) unlinked movies get zero features
"""


def _source_dir() -> str:
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")


def _read(name: str) -> pd.DataFrame:
    path = os.path.join(_source_dir(), f"ml-100k.{name}")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [column.split(":")[0] for column in frame.columns]
    return frame


def split_per_user(inter: pd.DataFrame, seed: int = SPLIT_SEED) -> dict[str, pd.DataFrame]:
    """Split each user's interactions 8:1:1 at random, with at least one in train."""
    inter = inter.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(inter), dtype=np.int8)
    for rows in inter.groupby("user_id", sort=True).indices.values():
        rows = rng.permutation(rows)
        n_valid = int(round(len(rows) * SPLIT_RATIOS[1]))
        n_test = int(round(len(rows) * SPLIT_RATIOS[2]))
        n_valid = min(n_valid, max(len(rows) - 1 - n_test, 0))
        labels[rows[len(rows) - n_test - n_valid : len(rows) - n_test]] = 1
        labels[rows[len(rows) - n_test :]] = 2
    return {part: inter[labels == code] for code, part in enumerate(("train", "valid", "test"))}


def _svd_features(docs: dict[str, str], width: int) -> tuple[list[str], np.ndarray]:
    ids = sorted(docs, key=int)
    tfidf = TfidfVectorizer(token_pattern=r"\S+", lowercase=True, min_df=2, sublinear_tf=True)
    matrix = tfidf.fit_transform([docs[i] for i in ids])
    svd = TruncatedSVD(n_components=width, random_state=SPLIT_SEED)
    return ids, svd.fit_transform(matrix).astype(np.float32)


def text_documents(items: pd.DataFrame) -> dict[str, str]:
    """One document per movie: its title words, genres and release year."""
    docs = {}
    for row in items.itertuples(index=False):
        genres = " ".join(f"genre:{g}" for g in row[3].split())
        docs[row.item_id] = f"{row.movie_title} {genres} year:{row.release_year}"
    return docs


def knowledge_documents(link: pd.DataFrame, kg: pd.DataFrame) -> dict[str, str]:
    """One document per linked movie: a token per (relation, neighbour entity) pair."""
    neighbours: dict[str, list[str]] = defaultdict(list)
    for head, relation, tail in kg.itertuples(index=False):
        neighbours[head].append(f"{relation}>{tail}")
        neighbours[tail].append(f"{relation}<{head}")
    docs = {}
    for item, entity in link.itertuples(index=False):
        if neighbours.get(entity):
            docs[item] = " ".join(neighbours[entity])
    return docs


def _write(folder: str) -> None:
    inter = _read("inter")
    for part, frame in split_per_user(inter).items():
        frame.to_csv(
            os.path.join(folder, f"{DEMO_NAME}.{part}.inter"),
            sep="\t",
            index=False,
            header=["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
        )
    features = {
        "textual": _svd_features(text_documents(_read("item")), TEXT_WIDTH),
        "knowledge": _svd_features(knowledge_documents(_read("link"), _read("kg")), KG_WIDTH),
    }
    for name, (ids, matrix) in features.items():
        np.save(os.path.join(folder, f"{DEMO_NAME}.{name}.npy"), matrix, allow_pickle=False)
        with open(os.path.join(folder, f"{DEMO_NAME}.{name}.ids"), "w", encoding="utf-8") as f:
            f.write("".join(f"{i}\n" for i in ids))
    with open(os.path.join(folder, f"{DEMO_NAME}.yaml"), "w", encoding="utf-8") as f:
        f.write(DATASET_YAML)


def prepare_demo(name: str = DEMO_NAME, data_path: str = "dataset") -> str:
    """Build the demo dataset under ``data_path/name`` unless it is already there.

    The folder is written in full under a temporary name and renamed at the end, so an
    interrupted build leaves nothing behind. When another process finishes the same build
    first (two runs started at once on a fresh clone), its folder is kept and this build is
    discarded.

    Returns:
        The dataset folder.
    """
    if name not in DEMO_DATASETS:
        raise ValueError(f"unknown demo dataset {name!r}; known: {', '.join(DEMO_DATASETS)}")
    target = os.path.join(data_path, name)
    if os.path.isdir(target):
        return target
    os.makedirs(data_path, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.", dir=data_path)
    try:
        # mkdtemp makes the folder private (0700); give it the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        _write(staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not os.path.isdir(target):
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    getLogger(__name__).info(f"demo dataset {name} written to {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_slmrec.data.demo",
        description=f"Build the offline demo dataset {DEMO_NAME} from RecBole's MovieLens-100k.",
    )
    parser.add_argument("--data_path", default="dataset", help="parent folder (default dataset)")
    args = parser.parse_args(argv)
    print(prepare_demo(DEMO_NAME, args.data_path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
