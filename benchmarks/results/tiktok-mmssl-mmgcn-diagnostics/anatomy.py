"""Diagnostic: what MMGCN's ranking looks like, epoch by epoch, on the Tiktok copy.

For a few variants of MMGCN (seed 2020, learning rate 1e-3 unless the variant says otherwise),
it trains epoch by epoch with RecBole's trainer and, after each epoch, measures:

* ``valid_r20``: validation Recall@20, full ranking, each user's training items excluded (the
  benchmark's protocol, computed here from the embeddings);
* ``distinct``: how many distinct items the validation users' top-20 lists hold together, and
  ``median_degree``: the median training degree of the items in those lists;
* ``pop_overlap``: the mean share of a user's top-20 that is also in that user's top-20 by
  training popularity;
* ``auc_train_in`` and ``auc_train_out``: for 5,000 training pairs, how often the positive
  outranks each of 20 random items, with the pair's edges in the graph and with them taken out
  of it (the model's weights unchanged); ``auc_valid``: the same for the validation pairs.

The variants:

* ``default``: the table's MMGCN;
* ``edge_out``: each batch's positive edges are taken out of the graph the batch propagates
  over, so a pair's score cannot come from the pair's own edge;
* ``layer_wd_0.1``: an L2 penalty of 0.05 times the squared weights of the projection and the
  layers (Adam weight decay 0.1 on them, what the reference's optimiser did in effect, since
  its embeddings were not parameters);
* ``reg_weight_10``: a hundred times the table's embedding penalty;
* ``lr_1e-4``: the reference's MovieLens learning rate;
* ``widen_256``: every modality's items projected to 256 by a learned linear layer (and the
  preferences 256 wide), as the peer toolbox does with the visual features;
* ``peer_init``: the peer toolbox's initialisation: the aggregation weights uniform in
  ``+-1/sqrt(d_in)``, the other linear weights Xavier-normal;
* ``LightGCN_lr_1e-2``: RecBole's LightGCN as the table selected it, for contrast (its
  training-pair AUCs are left out: they need MMGCN's graph).

Writes ``anatomy.json``, ``anatomy.md`` and ``anatomy.png`` to ``--output``. Not part of the
package; about 2 minutes per variant on 2 CPU threads.

Usage:
    python benchmarks/results/tiktok-mmssl-mmgcn-diagnostics/anatomy.py --data_path=dataset
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
import torch
from matplotlib.figure import Figure
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_trainer, init_seed
from torch import nn

from recbole_slmrec.benchmark.runs import PROTOCOL, QUIET, write_json_atomic
from recbole_slmrec.model.general_recommender.mmgcn import MMGCNLayer
from recbole_slmrec.quick_start import prepare_config
from recbole_slmrec.utils import get_model

VARIANTS = {
    "default": {},
    "edge_out": {"edge_out": True},
    "layer_wd_0.1": {"layer_wd": 0.1},
    "reg_weight_10": {"config": {"reg_weight": 10.0}},
    "lr_1e-4": {"config": {"learning_rate": 1e-4}},
    "widen_256": {"widen": 256},
    "peer_init": {"peer_init": True},
    "LightGCN_lr_1e-2": {"model": "LightGCN", "config": {"learning_rate": 1e-2}},
}
K = 20
N_PAIRS = 5000
N_NEGATIVES = 20


def edge_keys(inter: sp.spmatrix, n_items: int) -> np.ndarray:
    coo = inter.tocoo()
    return np.unique(coo.row.astype(np.int64) * n_items + coo.col)


def keys_to_coo(keys: np.ndarray, n_users: int, n_items: int) -> sp.coo_matrix:
    data = np.ones(len(keys), dtype=np.float32)
    return sp.coo_matrix((data, (keys // n_items, keys % n_items)), shape=(n_users, n_items))


def patch_edge_out(model, train_keys: np.ndarray) -> None:
    """Each batch propagates over the training graph without the batch's positive edges."""
    loss = model.calculate_loss

    def calculate_loss(interaction):
        users = interaction[model.USER_ID].cpu().numpy().astype(np.int64)
        items = interaction[model.ITEM_ID].cpu().numpy()
        keep = np.ones(len(train_keys), dtype=bool)
        keep[np.searchsorted(train_keys, users * model.n_items + items)] = False
        full = model.adj
        model.adj = model.aggregation_of(
            keys_to_coo(train_keys[keep], model.n_users, model.n_items)
        )
        try:
            return loss(interaction)
        finally:
            model.adj = full

    model.calculate_loss = calculate_loss


def widen(model, width: int) -> None:
    """Projects every modality's items to ``width`` (preferences and first layer to match)."""
    for name, graph in model.graphs.items():
        old = graph.layers[0]
        graph.projection = nn.Linear(model.modality_widths[name], width)
        graph.preference = nn.Parameter(torch.empty(model.n_users, width))
        graph.layers[0] = MMGCNLayer(width, old.skip.out_features, old.combination)
    model.reset_parameters()


def peer_init(model) -> None:
    """Aggregation weights uniform in ``+-1/sqrt(d_in)``, other linear weights Xavier-normal."""
    for module in model.modules():
        if isinstance(module, MMGCNLayer):
            bound = module.conv.in_features**-0.5
            nn.init.uniform_(module.conv.weight, -bound, bound)
            nn.init.xavier_normal_(module.skip.weight)
            nn.init.xavier_normal_(module.combine.weight)


def patch_layer_wd(model, weight_decay: float) -> None:
    """Adds ``weight_decay / 2`` times the squared projection and layer weights to the loss."""
    loss = model.calculate_loss
    params = [
        p for n, p in model.named_parameters() if n.startswith("graphs.") and "preference" not in n
    ]

    def calculate_loss(interaction):
        return loss(interaction) + 0.5 * weight_decay * sum((p**2).sum() for p in params)

    model.calculate_loss = calculate_loss


class Probe:
    """The per-epoch measurements, on fixed samples drawn once."""

    def __init__(self, model, train_csr: sp.csr_matrix, valid_csr: sp.csr_matrix):
        self.model = model
        self.train = train_csr
        self.valid = valid_csr
        rng = np.random.default_rng(0)
        n_users, n_items = model.n_users, model.n_items
        coo = train_csr.tocoo()
        picked = rng.choice(coo.nnz, N_PAIRS, replace=False)
        self.train_pairs = (coo.row[picked], coo.col[picked])
        keep = np.ones(coo.nnz, dtype=bool)
        keep[picked] = False
        kept = (coo.row[keep], coo.col[keep])
        reduced = sp.coo_matrix((coo.data[keep], kept), shape=(n_users, n_items))
        self.graph_model = hasattr(model, "adj")
        self.reduced_adj = model.aggregation_of(reduced) if self.graph_model else None
        vcoo = valid_csr.tocoo()
        self.valid_pairs = (vcoo.row, vcoo.col)
        self.negatives = rng.integers(1, n_items, size=(max(N_PAIRS, vcoo.nnz), N_NEGATIVES))
        self.users = np.unique(vcoo.row)
        self.degree = np.asarray(train_csr.sum(axis=0)).ravel()
        self.pop_top = self.top_k(
            torch.ones(n_users, 1), torch.from_numpy(self.degree.astype(np.float32))[:, None]
        )

    def representations(self, adj=None) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if not self.graph_model:
            with torch.no_grad():
                return model.forward()
        full = model.adj
        if adj is not None:
            model.adj = adj
        try:
            with torch.no_grad():
                out = model.forward()
        finally:
            model.adj = full
        return out[: model.n_users], out[model.n_users :]

    def top_k(self, user_e: torch.Tensor, item_e: torch.Tensor) -> np.ndarray:
        tops = []
        for start in range(0, len(self.users), 4096):
            batch = self.users[start : start + 4096]
            scores = user_e[batch] @ item_e.T
            scores[:, 0] = -np.inf
            seen = self.train[batch].tocoo()
            scores[seen.row, seen.col] = -np.inf
            tops.append(torch.topk(scores, K, dim=1).indices.numpy())
        return np.concatenate(tops)

    def recall(self, top: np.ndarray) -> float:
        truth = self.valid[self.users]
        hits = np.take_along_axis(truth.toarray(), top, axis=1).sum(axis=1)
        return float(np.mean(hits / np.asarray(truth.sum(axis=1)).ravel()))

    def auc(self, user_e, item_e, pairs) -> float:
        users, items = pairs
        negatives = self.negatives[: len(users)]
        pos = (user_e[users] * item_e[items]).sum(dim=1, keepdim=True)
        neg = (user_e[users].unsqueeze(1) * item_e[negatives]).sum(dim=2)
        return float((pos > neg).float().mean())

    def measure(self) -> dict:
        user_e, item_e = self.representations()
        top = self.top_k(user_e, item_e)
        overlap = [len(np.intersect1d(a, b)) / K for a, b in zip(top, self.pop_top)]
        if self.graph_model:
            out_user_e, out_item_e = self.representations(self.reduced_adj)
            auc_in = self.auc(user_e, item_e, self.train_pairs)
            auc_out = self.auc(out_user_e, out_item_e, self.train_pairs)
        else:
            auc_in = auc_out = None
        return {
            "valid_r20": self.recall(top),
            "distinct": int(len(np.unique(top))),
            "median_degree": float(np.median(self.degree[top])),
            "pop_overlap": float(np.mean(overlap)),
            "auc_train_in": auc_in,
            "auc_train_out": auc_out,
            "auc_valid": self.auc(user_e, item_e, self.valid_pairs),
        }

    def popularity(self) -> dict:
        return {
            "valid_r20": self.recall(self.pop_top),
            "distinct": int(len(np.unique(self.pop_top))),
            "median_degree": float(np.median(self.degree[self.pop_top])),
        }


def run_variant(name: str, variant: dict, args, base: dict):
    config_dict = {**base, **variant.get("config", {})}
    model_name = variant.get("model", "MMGCN")
    config = prepare_config(model_name, args.dataset, None, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(model_name)(config, train_data._dataset)
    train_csr = train_data._dataset.inter_matrix(form="csr").astype(np.float32)
    valid_csr = valid_data._dataset.inter_matrix(form="csr").astype(np.float32)
    if variant.get("widen"):
        widen(model, variant["widen"])
    if variant.get("peer_init"):
        peer_init(model)
    if variant.get("edge_out"):
        patch_edge_out(model, edge_keys(train_csr, model.n_items))
    if variant.get("layer_wd"):
        patch_layer_wd(model, variant["layer_wd"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    probe = Probe(model, train_csr, valid_csr)
    rows = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        loss = trainer._train_epoch(train_data, epoch)
        model.eval()
        row = {"epoch": epoch, "train_loss": float(loss), **probe.measure()}
        rows.append(row)
        print(
            f"[{name}] epoch {epoch}: loss {row['train_loss']:.2f}, valid R@20 "
            f"{row['valid_r20']:.4f}, {row['distinct']} distinct items in the top-20s "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return rows, probe.popularity()


def write_report(results: dict, popularity: dict, folder: str) -> None:
    lines = [
        "# MMGCN's ranking, epoch by epoch (seed 2020; written by `anatomy.py`)",
        "",
        f"Popularity (the {K} most interacted training items a user has not seen): valid R@20 "
        f"{popularity['valid_r20']:.4f}, {popularity['distinct']} distinct items in the "
        f"top-20s, median training degree {popularity['median_degree']:.0f}.",
        "",
        "| variant | epoch | train loss | valid R@20 | distinct items | median degree "
        "| popularity overlap | AUC train, edge in | AUC train, edge out | AUC valid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for r in rows:
            auc_in, auc_out = (
                "–" if r[key] is None else f"{r[key]:.3f}"
                for key in ("auc_train_in", "auc_train_out")
            )
            lines.append(
                f"| {name} | {r['epoch']} | {r['train_loss']:.2f} | {r['valid_r20']:.4f} "
                f"| {r['distinct']} | {r['median_degree']:.0f} | {r['pop_overlap']:.2f} "
                f"| {auc_in} | {auc_out} | {r['auc_valid']:.3f} |"
            )
    tmp = os.path.join(folder, "anatomy.md.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(folder, "anatomy.md"))

    figure = Figure(figsize=(11, 4))
    recall_ax, distinct_ax = figure.subplots(1, 2)
    for name, rows in results.items():
        epochs = [r["epoch"] for r in rows]
        recall_ax.plot(epochs, [r["valid_r20"] for r in rows], marker="o", label=name)
        distinct_ax.plot(epochs, [r["distinct"] for r in rows], marker="o", label=name)
    recall_ax.axhline(popularity["valid_r20"], color="grey", linestyle="--", label="popularity")
    recall_ax.set(xlabel="epoch", ylabel="valid Recall@20", title="MMGCN on Tiktok, seed 2020")
    distinct_ax.set(xlabel="epoch", ylabel="distinct items in the top-20s", yscale="log")
    recall_ax.legend(fontsize=8)
    figure.tight_layout()
    tmp = os.path.join(folder, "anatomy.tmp.png")
    figure.savefig(tmp, dpi=110)
    os.replace(tmp, os.path.join(folder, "anatomy.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiktok-mmssl")
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--output", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()

    base = {
        **QUIET,
        **PROTOCOL,
        "data_path": args.data_path,
        "seed": 2020,
        "learning_rate": 1e-3,
        "show_progress": False,
    }
    results, popularity = {}, None
    for name in args.variants.split(","):
        results[name], popularity = run_variant(name, VARIANTS[name], args, base)
    os.makedirs(args.output, exist_ok=True)
    write_json_atomic(
        os.path.join(args.output, "anatomy.json"),
        {"popularity": popularity, "variants": results, "epochs": args.epochs},
    )
    write_report(results, popularity, args.output)


if __name__ == "__main__":
    main()
