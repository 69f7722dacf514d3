"""Synthetic datasets with paper-scale statistics, written in the MMGCN release layout.

``python -m recbole_slmrec.perf.generate --preset kwai --fraction 0.1 --out DIR --seed 0``
writes what the MMGCN release holds (and what ``atomic_data_tools``' ``mmgcn`` converter reads):

* ``train.npy``: an int64 array of ``[user, item]`` rows;
* ``val_full.npy``, ``test_full.npy``: object arrays, one row ``[user, item, item, ...]`` per
  user;
* the features, row ``k`` for item ``k``: ``FeatureVideo_normal.npy``,
  ``FeatureAudio_avg_normal.npy`` and ``FeatureText_stl_normal.npy`` (``npy`` format, as
  Movielens), or saved tensors ``feat_v.pt``, ``feat_a.pt`` and ``feat_t.pt`` (``pt`` format, as
  Tiktok and Kwai);
* ``generator.json``: the parameters and the statistics of what was written.

Users are numbered from 0 and items after them (``item = num_users + k``). User degrees follow a
power law: the user of rank ``r`` (from 0) has a weight ``(r + 1) ** (-1 / (exponent - 1))``,
which gives degrees whose distribution has the tail ``P(d) ~ d ** -exponent``; item popularity
uses the same law. Every user has at least three interactions and at most half of the items,
every item at least one; each user's items are split at random into test (10%, at least one),
validation (10%, at least one) and train (the rest).

Memory: interactions are held once (a few int64 arrays); feature matrices are written in chunks
of about 64 MiB through memory-mapped files. A saved tensor cannot be written in pieces:
``torch.save`` serialises one whole tensor, so for the ``pt`` format the matrix is first built in
a memory-mapped temporary file and saved from there; its pages are the page cache's (they count
in the resident size while saved, but are not heap memory), and the disk briefly holds the matrix
twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap

logger = logging.getLogger(__name__)

MODALITIES = ("visual", "acoustic", "textual")
FEATURE_FILES = {
    "npy": {
        "visual": "FeatureVideo_normal.npy",
        "acoustic": "FeatureAudio_avg_normal.npy",
        "textual": "FeatureText_stl_normal.npy",
    },
    "pt": {"visual": "feat_v.pt", "acoustic": "feat_a.pt", "textual": "feat_t.pt"},
}
MIN_USER_DEGREE = 3
VALID_SHARE = 0.1
TEST_SHARE = 0.1
CHUNK_BYTES = 64 * 2**20
POPULARITY_ROUNDS = 4
MAX_ROUNDS = 200


@dataclass(frozen=True)
class Spec:
    """What to generate.

    Attributes:
        users: number of users.
        items: number of items.
        interactions: number of distinct (user, item) interactions, all splits together.
        widths: modality name -> feature width, in the order of :data:`MODALITIES`.
        feature_format: ``npy`` (Movielens file names) or ``pt`` (Tiktok and Kwai).
        exponent: the power-law exponent of the degree distributions (> 1).
        seed: the random seed.
    """

    users: int
    items: int
    interactions: int
    widths: dict[str, int] = field(default_factory=dict)
    feature_format: str = "npy"
    exponent: float = 2.5
    seed: int = 0


PRESETS = {
    "tiktok": Spec(36_656, 76_085, 726_065, {"visual": 128, "acoustic": 128, "textual": 128}, "pt"),
    "kwai": Spec(22_611, 329_510, 1_664_305, {"visual": 2048}, "pt"),
    "movielens": Spec(
        55_485, 5_986, 1_239_508, {"visual": 2048, "acoustic": 128, "textual": 100}, "npy"
    ),
}
"""The paper's datasets (MMGCN preprocessing). Kwai's release ships visual features only."""


def scale(spec: Spec, fraction: float) -> Spec:
    """``spec`` with users, items and interactions scaled by ``fraction`` (rounded, at least 1).

    Raises:
        ValueError: if ``fraction`` is not in ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not in (0, 1]")
    return replace(
        spec,
        users=max(1, round(spec.users * fraction)),
        items=max(1, round(spec.items * fraction)),
        interactions=max(1, round(spec.interactions * fraction)),
    )


def check(spec: Spec) -> None:
    """Refuse a specification that no dataset of this generator's rules can satisfy.

    Raises:
        ValueError: naming the numbers that disagree.
    """
    unknown = [name for name in spec.widths if name not in MODALITIES]
    if unknown or any(width < 1 for width in spec.widths.values()):
        raise ValueError(
            f"widths {spec.widths}: expected positive widths of {', '.join(MODALITIES)}"
        )
    if spec.feature_format not in FEATURE_FILES:
        raise ValueError(f"feature format {spec.feature_format!r}: expected npy or pt")
    if spec.exponent <= 1.0:
        raise ValueError(f"exponent {spec.exponent}: a power law needs an exponent above 1")
    cap = spec.items // 2
    low, high = max(MIN_USER_DEGREE * spec.users, spec.items), spec.users * cap
    if not low <= spec.interactions <= high:
        raise ValueError(
            f"{spec.interactions} interactions for {spec.users} users and {spec.items} items: "
            f"expected {low}..{high} (every user has {MIN_USER_DEGREE} to {cap} items, half of "
            "the items, and every item at least one user)"
        )


def power_law_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights of ``n`` nodes whose ranks follow Zipf's law for a degree tail ``d ** -exponent``.

    Returns:
        ``(n,)`` float64 weights summing to 1, in random node order.
    """
    weights = np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / (exponent - 1.0))
    return rng.permutation(weights / weights.sum())


def user_degrees(spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """Power-law user degrees between the minimum and half the items, summing to the total."""
    cap = spec.items // 2
    weights = power_law_weights(spec.users, spec.exponent, rng)
    degrees = MIN_USER_DEGREE + rng.multinomial(
        spec.interactions - MIN_USER_DEGREE * spec.users, weights
    )
    # give what lies above the cap to the users below it, in proportion to their weights
    while (excess := int(np.maximum(degrees - cap, 0).sum())) > 0:
        degrees = np.minimum(degrees, cap)
        room = degrees < cap
        share = np.where(room, weights, 0.0)
        degrees += rng.multinomial(excess, share / share.sum())
    return degrees


def sample_interactions(
    spec: Spec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs: users with power-law degrees, items by power-law popularity.

    Every item is given to one randomly placed interaction first, so that each appears. Pairs
    drawn twice are drawn again, by popularity for a few rounds and then uniformly (a user never
    holds more than half of the items, so uniform draws succeed at least half the time).

    Returns:
        ``users`` and ``items`` (``(interactions,)`` int64, sorted by user, then item) and the
        user degrees.
    """
    degrees = user_degrees(spec, rng)
    popularity = np.cumsum(power_law_weights(spec.items, spec.exponent, rng))
    popularity[-1] = 1.0

    def draw(count: int, by_popularity: bool) -> np.ndarray:
        if by_popularity:
            return np.searchsorted(popularity, rng.random(count), side="right")
        return rng.integers(0, spec.items, size=count)

    users = np.repeat(np.arange(spec.users, dtype=np.int64), degrees)
    items = draw(spec.interactions, by_popularity=True)
    items[rng.choice(spec.interactions, size=spec.items, replace=False)] = rng.permutation(
        spec.items
    )
    keys = np.unique(users * spec.items + items)
    for round_index in range(MAX_ROUNDS):
        missing = degrees - np.bincount(keys // spec.items, minlength=spec.users)
        if not missing.any():
            break
        users = np.repeat(np.arange(spec.users, dtype=np.int64), missing)
        items = draw(len(users), by_popularity=round_index < POPULARITY_ROUNDS)
        keys = np.union1d(keys, users * spec.items + items)
    else:
        raise RuntimeError(f"no distinct interactions after {MAX_ROUNDS} rounds of draws")
    return keys // spec.items, keys % spec.items, degrees


def split_interactions(
    users: np.ndarray, degrees: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign each interaction to a split at random within its user.

    Args:
        users: ``(n,)`` user of each interaction, sorted.
        degrees: interactions of each user.

    Returns:
        ``(n,)`` int8 split of each interaction: 0 train, 1 validation, 2 test.
    """
    starts = np.concatenate([[0], np.cumsum(degrees)[:-1]])
    order = np.lexsort((rng.random(len(users)), users))
    position = np.empty(len(users), dtype=np.int64)
    position[order] = np.arange(len(users)) - starts[users[order]]
    n_test = np.maximum(1, np.round(TEST_SHARE * degrees)).astype(np.int64)[users]
    n_valid = np.maximum(1, np.round(VALID_SHARE * degrees)).astype(np.int64)[users]
    split = np.zeros(len(users), dtype=np.int8)
    split[position < n_test + n_valid] = 1
    split[position < n_test] = 2
    return split


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it once the block succeeds."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_train(path: Path, users: np.ndarray, items: np.ndarray) -> None:
    """``train.npy``: ``[user, item]`` int64 rows."""
    with atomic_path(path) as temporary:
        rows = open_memmap(temporary, mode="w+", dtype=np.int64, shape=(len(users), 2))
        rows[:, 0] = users
        rows[:, 1] = items
        rows.flush()
        del rows


def write_per_user(path: Path, n_users: int, users: np.ndarray, items: np.ndarray) -> None:
    """An object array of one row ``[user, item, ...]`` per user (every user, sorted)."""
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    rows = np.empty(n_users, dtype=object)
    for user in range(n_users):
        rows[user] = [user, *items[bounds[user] : bounds[user + 1]].tolist()]
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.save(stream, rows, allow_pickle=True)


def fill_features(matrix: np.ndarray, rng: np.random.Generator) -> None:
    """Fill ``matrix`` with L2-normalised Gaussian rows, about :data:`CHUNK_BYTES` at a time."""
    rows_per_chunk = max(1, CHUNK_BYTES // (4 * matrix.shape[1]))
    for start in range(0, matrix.shape[0], rows_per_chunk):
        shape = (min(rows_per_chunk, matrix.shape[0] - start), matrix.shape[1])
        chunk = rng.standard_normal(shape, dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        matrix[start : start + len(chunk)] = chunk


def write_features(
    path: Path, rows: int, width: int, feature_format: str, rng: np.random.Generator
) -> None:
    """One feature matrix, ``rows x width`` float32, as ``.npy`` or as a saved tensor."""
    with atomic_path(path) as temporary:
        if feature_format == "npy":
            matrix = open_memmap(temporary, mode="w+", dtype=np.float32, shape=(rows, width))
            fill_features(matrix, rng)
            matrix.flush()
            del matrix
            return
        backing = path.with_name(f".{path.name}.backing.npy")
        try:
            matrix = open_memmap(backing, mode="w+", dtype=np.float32, shape=(rows, width))
            fill_features(matrix, rng)
            torch.save(torch.from_numpy(matrix), temporary)
            del matrix
        finally:
            backing.unlink(missing_ok=True)


def generate(spec: Spec, out: Path) -> dict[str, object]:
    """Write a synthetic MMGCN release of ``spec`` into ``out``.

    Args:
        spec: what to generate.
        out: the release folder (created; files of the same names are replaced).

    Returns:
        The description written to ``generator.json``: the specification, the files, and the
        users, items and interactions of each split with the degree statistics.

    Raises:
        ValueError: if the specification cannot be satisfied.
    """
    check(spec)
    out.mkdir(parents=True, exist_ok=True)
    interaction_seed, split_seed, *feature_seeds = np.random.SeedSequence(spec.seed).spawn(
        2 + len(MODALITIES)
    )

    logger.info(
        f"drawing {spec.interactions} interactions of {spec.users} users and {spec.items} items"
    )
    users, items, degrees = sample_interactions(spec, np.random.default_rng(interaction_seed))
    split = split_interactions(users, degrees, np.random.default_rng(split_seed))
    offset_items = items + spec.users
    write_train(out / "train.npy", users[split == 0], offset_items[split == 0])
    for name, code in (("val_full.npy", 1), ("test_full.npy", 2)):
        write_per_user(out / name, spec.users, users[split == code], offset_items[split == code])
    files = ["train.npy", "val_full.npy", "test_full.npy"]

    for modality, seed in zip(MODALITIES, feature_seeds):
        if modality not in spec.widths:
            continue
        name = FEATURE_FILES[spec.feature_format][modality]
        logger.info(f"writing {name}: {spec.items} x {spec.widths[modality]} float32")
        write_features(
            out / name,
            spec.items,
            spec.widths[modality],
            spec.feature_format,
            np.random.default_rng(seed),
        )
        files.append(name)

    item_degrees = np.bincount(items, minlength=spec.items)
    description: dict[str, object] = {
        "spec": asdict(spec),
        "files": files,
        "item_numbering": "after users (item = num_users + k)",
        "splits": {
            name: int((split == code).sum())
            for name, code in (("train", 0), ("valid", 1), ("test", 2))
        },
        "user_degree": _degree_stats(degrees),
        "item_degree": _degree_stats(item_degrees),
    }
    with atomic_path(out / "generator.json") as temporary:
        temporary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return description


def _degree_stats(degrees: np.ndarray) -> dict[str, float]:
    return {
        "min": int(degrees.min()),
        "median": float(np.median(degrees)),
        "mean": float(degrees.mean()),
        "max": int(degrees.max()),
    }


def parse_widths(text: str) -> dict[str, int]:
    """``visual=128,acoustic=128`` -> ``{"visual": 128, "acoustic": 128}`` in modality order."""
    widths: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in MODALITIES or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected NAME=WIDTH with NAME one of {', '.join(MODALITIES)}"
            )
        widths[name] = int(value)
    return {name: widths[name] for name in MODALITIES if name in widths}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m recbole_slmrec.perf.generate``."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_slmrec.perf.generate",
        description="Write a synthetic dataset with power-law degrees in the MMGCN release "
        "layout (convert it with `python -m atomic_data_tools --input OUT --dataset NAME`).",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the statistics of a paper set")
    parser.add_argument("--fraction", type=float, default=1.0, help="scale users, items, inter.")
    parser.add_argument("--users", type=int, help="number of users (overrides the preset)")
    parser.add_argument("--items", type=int, help="number of items (overrides the preset)")
    parser.add_argument("--interactions", type=int, help="interactions, all splits together")
    parser.add_argument(
        "--widths", type=parse_widths, help="modality widths, e.g. visual=2048,textual=100"
    )
    parser.add_argument("--format", choices=sorted(FEATURE_FILES), help="feature files")
    parser.add_argument("--exponent", type=float, help="power-law degree exponent (default 2.5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    return parser


def spec_from_args(args: argparse.Namespace) -> Spec:
    """The specification of the parsed command line: the preset, overridden, then scaled."""
    base = PRESETS.get(args.preset) or Spec(0, 0, 0)
    overrides = {
        "users": args.users,
        "items": args.items,
        "interactions": args.interactions,
        "widths": args.widths,
        "feature_format": args.format,
        "exponent": args.exponent,
    }
    spec = replace(base, seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    return scale(spec, args.fraction)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the dataset of the command line ``argv``; print what was written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset is None and None in (args.users, args.items, args.interactions, args.widths):
        parser.error("without --preset, give --users, --items, --interactions and --widths")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        description = generate(spec_from_args(args), args.out)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(json.dumps(description, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
