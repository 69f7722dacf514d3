"""How many of an in-batch InfoNCE's negatives are in fact the user's own training items.

``python -m recbole_slmrec.perf.batches --dataset=ml-100k-mm --data_path=dataset`` draws random
batches of training pairs, as RecBole's training loader does for SLMRec (the training
interactions shuffled, ``--batch_size`` pairs at a time), and counts, for each row ``(u, i)``
of a batch, the other columns ``j`` whose item is one of ``u``'s training items: the "accidental
hits" that the loss treats as negatives. They are split into three kinds:

* ``repeated item``: ``i_j == i``, the row's own item drawn again for another user;
* ``same user``: ``u_j == u`` with another item, which is always one of ``u``'s items;
* ``other``: any other column whose item ``u`` also has.

The figures are means per row; ``share`` divides the total by the ``B - 1`` negatives of a row.
``SLMRec``'s ``mask_train_positives`` removes exactly these columns from the softmax.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from recbole_slmrec.benchmark.runs import write_json_atomic
from recbole_slmrec.model.losses import accidental_hits, pair_index


@dataclass
class HitCounts:
    """Mean accidental hits per row of a batch, by kind (see the module's docstring)."""

    batch_size: int
    repeated_item: float
    same_user: float
    other: float

    @property
    def total(self) -> float:
        return self.repeated_item + self.same_user + self.other

    @property
    def share(self) -> float:
        return self.total / max(1, self.batch_size - 1)


def count_hits(
    index: tuple[torch.Tensor, torch.Tensor],
    n_items: int,
    users: torch.Tensor,
    items: torch.Tensor,
) -> HitCounts:
    """The accidental hits of one batch of ``(users[k], items[k])`` training pairs.

    Args:
        index: the training pairs, from :func:`~recbole_slmrec.model.losses.pair_index`.
        n_items: the number of items.
        users: the batch's user ids.
        items: the batch's item ids.
    """
    hits = accidental_hits(index, n_items, users, items)
    off_diagonal = ~torch.eye(len(users), dtype=torch.bool)
    repeated = (items.unsqueeze(1) == items.unsqueeze(0)) & off_diagonal
    same_user = (users.unsqueeze(1) == users.unsqueeze(0)) & off_diagonal & ~repeated
    rows = max(1, len(users))
    n_repeated = int((hits & repeated).sum())
    n_same_user = int((hits & same_user).sum())
    n_other = int(hits.sum()) - n_repeated - n_same_user
    return HitCounts(len(users), n_repeated / rows, n_same_user / rows, n_other / rows)


def sample_hits(
    users: torch.Tensor,
    items: torch.Tensor,
    n_users: int,
    n_items: int,
    batch_size: int,
    n_batches: int,
    seed: int = 0,
) -> HitCounts:
    """The mean :class:`HitCounts` of ``n_batches`` random batches of the training pairs.

    Each batch is the first ``batch_size`` pairs of a fresh random permutation, the way a
    shuffled training loader forms its batches; a batch never holds a pair twice.
    """
    if batch_size < 2 or n_batches < 1:
        raise ValueError("sample_hits needs batch_size >= 2 and n_batches >= 1")
    index = pair_index(users, items, n_users)
    generator = torch.Generator().manual_seed(seed)
    size = min(batch_size, len(users))
    counts = []
    for _ in range(n_batches):
        rows = torch.randperm(len(users), generator=generator)[:size]
        counts.append(count_hits(index, n_items, users[rows], items[rows]))
    mean = {
        kind: sum(getattr(c, kind) for c in counts) / len(counts)
        for kind in ("repeated_item", "same_user", "other")
    }
    return HitCounts(size, **mean)


def load_training_pairs(
    dataset: str, data_path: str
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The training interactions of a RecBole dataset, as RecBole's ids.

    Returns:
        ``(users, items, n_users, n_items)``.
    """
    from recbole.data import create_dataset

    from recbole_slmrec.config import Config

    config = Config("SLMRec", dataset, config_dict={"data_path": data_path, "state": "WARNING"})
    train = create_dataset(config).build()[0]
    inter = train.inter_feat
    users = torch.as_tensor(inter[train.uid_field]).long()
    items = torch.as_tensor(inter[train.iid_field]).long()
    return users, items, train.user_num, train.item_num


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_slmrec.perf.batches",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument("--data_path", required=True, help="folder that holds the dataset folder")
    parser.add_argument("--batch_size", type=int, default=2048, help="pairs per batch (2048)")
    parser.add_argument("--batches", type=int, default=20, help="random batches to average (20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations (0)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.batches < 1:
        parser.error("--batch_size must be at least 2 and --batches at least 1")
    users, items, n_users, n_items = load_training_pairs(args.dataset, args.data_path)
    counts = sample_hits(users, items, n_users, n_items, args.batch_size, args.batches, args.seed)
    print(
        f"{args.dataset}: {len(users)} training pairs, {n_users - 1} users, {n_items - 1} "
        f"items; {args.batches} random batches of {counts.batch_size} pairs"
    )
    print("| accidental hits per row | repeated item | same user | other | total | share |")
    print("|---|---|---|---|---|---|")
    print(
        f"| mean | {counts.repeated_item:.1f} | {counts.same_user:.1f} | {counts.other:.1f} | "
        f"{counts.total:.1f} | {counts.share:.1%} |"
    )
    if args.json:
        figures = asdict(counts) | {"total": counts.total, "share": counts.share}
        figures |= {"dataset": args.dataset, "batches": args.batches, "seed": args.seed}
        write_json_atomic(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
