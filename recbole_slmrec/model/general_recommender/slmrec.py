"""SLMRec.

Reference:
    Zhulin Tao, Xiaohao Liu, Yewei Xia, Xiang Wang, Lifang Yang, Xianglin Huang and Tat-Seng
    Chua. "Self-supervised Learning for Multimedia Recommendation." IEEE Transactions on
    Multimedia, 2022. doi:10.1109/TMM.2022.3187556
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType
from torch import nn

from recbole_slmrec.data.features import FeatureError
from recbole_slmrec.model.abstract import (
    ModelConfigError,
    MultiModalRecommender,
    check_choice,
    check_float,
    check_int,
)
from recbole_slmrec.model.graph import ADJ_TYPES, lightgcn_propagate
from recbole_slmrec.model.losses import accidental_hits, info_nce, pair_index

SSL_TASKS = ("FAC", "FD", "FM", "FD+FM", "none")
FUSIONS = ("concat", "mean")
SCORE_TYPES = ("dot", "cosine")


def train_item_ids(dataset) -> torch.Tensor:
    """The item id of every training interaction of ``dataset``."""
    return torch.as_tensor(dataset.inter_feat[dataset.iid_field]).long()


class SLMRec(MultiModalRecommender):
    r"""Self-supervised learning for multimedia recommendation.

    An ID view and one view per modality are propagated over the training graph, LightGCN
    style; every view starts from the same user embeddings and differs in its item half (the
    ID embeddings, or the projected features of one modality). All views run as one sparse
    product on the views stacked side by side. A user and an item layer fuse the views into
    ``P`` (``n_users x d``) and ``Q`` (``n_items x d``). The main loss is in-batch InfoNCE on
    cosine similarity; ``ssl_alpha`` weighs a self-supervised task: fine-and-coarse alignment
    of the views (FAC), feature dropout (FD), feature masking (FM), or FD+FM.

    Note:
        The mean fusion layers are ``d -> d``: the reference kept the concat width and crashed.
        Feature masking draws its two views from the views that exist: the reference drew from
        a fixed range and could draw a missing view with one modality.
        Word-id text is a learnable bag-of-words embedding: the reference averaged random word
        vectors once at start-up, so they never learned.
        Models are selected on the validation split: the reference stopped on the test set.
        ``ssl_task: none`` (or ``ssl_alpha`` 0) trains the main loss alone, for ablations.
        Two corrections of the in-batch InfoNCE, both off by default as in the reference:
        ``logq_correction`` subtracts from each column's logits the log of its item's share of
        the training pairs (the probability that the batch draws it), so popular items are not
        penalised for being negatives more often; ``mask_train_positives`` leaves out of each
        user's negatives the items it has in the training set, which on dense data are many
        (docs/BENCHMARK.md).
        With several processes, each rank's in-batch losses contrast its local batch of
        ``train_batch_size // world_size`` pairs (docs/DISTRIBUTED.md).
    """

    input_type = InputType.POINTWISE
    normalize_features = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size = check_int("embedding_size", config["embedding_size"], 1)
        self.n_layers = check_int("n_layers", config["n_layers"], 0)
        self.temp = check_float("temp", config["temp"], 0.0, low_open=True)
        self.ssl_task = check_choice("ssl_task", str(config["ssl_task"]), SSL_TASKS)
        self.ssl_alpha = check_float("ssl_alpha", config["ssl_alpha"], 0.0)
        self.ssl_temp = check_float("ssl_temp", config["ssl_temp"], 0.0, low_open=True)
        self.dropout_rate = check_float("dropout_rate", config["dropout_rate"], 0.0, 1.0)
        self.fusion = check_choice("fusion", config["fusion"], FUSIONS)
        self.score_type = check_choice("score_type", config["score_type"], SCORE_TYPES)
        self.adj_type = check_choice("adj_type", config["adj_type"], ADJ_TYPES)
        self.mask_train_positives = bool(config["mask_train_positives"])
        self.logq_correction = bool(config["logq_correction"])
        if not self.modalities:
            raise FeatureError(
                "SLMRec needs at least one modality, but the dataset declares none: add a "
                "`modalities` list to its YAML (see docs/DATA_FORMAT.md)"
            )
        self.n_views = len(self.modalities) + 1
        d = self.embedding_size
        if self.ssl_task == "FAC" and len(self.modalities) >= 3 and d < 2:
            raise ModelConfigError(
                f"`embedding_size` is {d}; FAC aligns the third and later modalities in d // 2 "
                "dimensions, so it needs an embedding_size of at least 2"
            )

        # define layers
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projections = nn.ModuleDict(
            {name: nn.Linear(self.modality_widths[name], d) for name in self.modalities}
        )
        fused_width = self.n_views * d if self.fusion == "concat" else d
        self.user_fusion = nn.Linear(fused_width, d)
        self.item_fusion = nn.Linear(fused_width, d)

        # the FAC chain: stage s aligns g_s(x_{s-1}) (x_0 the ID view) with h_s(modality s)
        widths = [d if stage < 2 else d // 2 for stage in range(len(self.modalities))]
        inputs = [d] + widths[:-1]
        self.fac_id_heads = nn.ModuleList(nn.Linear(i, w) for i, w in zip(inputs, widths))
        self.fac_modality_heads = nn.ModuleList(nn.Linear(d, w) for w in widths)

        # the graph of the training interactions
        self.register_buffer(
            "norm_adj", self.build_adjacency(dataset, self.adj_type), persistent=False
        )

        # the training pairs, to leave a user's own positives out of its in-batch negatives
        if self.mask_train_positives:
            inter = dataset.inter_matrix(form="coo")
            indptr, indices = pair_index(
                torch.from_numpy(inter.row), torch.from_numpy(inter.col), self.n_users
            )
            self.register_buffer("train_indptr", indptr, persistent=False)
            self.register_buffer("train_indices", indices, persistent=False)
        # an item's share of the training pairs: its probability of being an in-batch negative
        if self.logq_correction:
            counts = torch.bincount(train_item_ids(dataset), minlength=self.n_items)
            counts = counts.clamp_(min=1)
            self.register_buffer(
                "item_log_share", (counts / counts.sum()).log().float(), persistent=False
            )

        # dense features propagated once: the propagation is linear, so a modality view is
        # S [E_u; 0] + (S [0; X_m]) W_m + (S [0; 1]) b_m, with S the LightGCN read-out operator
        self.precompute_features = bool(config["precompute_features"]) and not self.word_bags
        if self.precompute_features:
            self._precompute_feature_propagation()

        # the inference cache, filled lazily by full_sort_predict
        self.restore_user_e = None
        self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

        # parameters initialization
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases for every layer; clears the cache."""
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.init_layers()

    def _precompute_feature_propagation(self, chunk: int = 256) -> None:
        """Register ``<name>_prop`` = ``S [0; X_m]`` (``N x d_m``) and ``ones_prop`` = ``S [0; 1]``.

        The columns are propagated in chunks of ``chunk``, so the extra memory is bounded by
        ``N x chunk`` whatever the feature widths.
        """
        symmetric = self.adj_type == "pre"
        inputs = [self.modality_input(name) for name in self.modalities]
        inputs.append(inputs[0].new_ones(self.n_items, 1))
        names = [f"{name}_prop" for name in self.modalities] + ["ones_prop"]
        with torch.no_grad():
            for name, features in zip(names, inputs):
                parts = []
                for start in range(0, features.shape[1], chunk):
                    block = features[:, start : start + chunk]
                    ego = torch.cat([block.new_zeros(self.n_users, block.shape[1]), block])
                    parts.append(lightgcn_propagate(self.norm_adj, ego, self.n_layers, symmetric))
                self.register_buffer(name, torch.cat(parts, dim=1), persistent=False)

    def item_views(self) -> list[torch.Tensor]:
        """The layer-0 item half of every view: ``[E_i, H_m1, H_m2, ...]``, each ``n_items x d``."""
        views = [self.item_embedding.weight]
        for name in self.modalities:
            views.append(self.projections[name](self.modality_input(name)))
        return views

    def propagate_views(
        self, masked_view: int | None = None, dropout: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagate all views in one sparse pass and read them out.

        Args:
            masked_view: index of a view (0 the ID view) whose item half starts as zeros.
            dropout: dropout on each layer's output (feature dropout).

        Returns:
            ``(zu, zi)`` of shapes ``n_users x V x d`` and ``n_items x V x d``.
        """
        items = self.item_views()
        if masked_view is not None:
            items[masked_view] = torch.zeros_like(items[masked_view])
        users = self.user_embedding.weight.repeat(1, self.n_views)
        ego = torch.cat([users, torch.cat(items, dim=1)], dim=0)
        out = lightgcn_propagate(
            self.norm_adj, ego, self.n_layers, symmetric=self.adj_type == "pre", dropout=dropout
        )
        zu, zi = torch.split(out, [self.n_users, self.n_items])
        d = self.embedding_size
        return zu.view(self.n_users, self.n_views, d), zi.view(self.n_items, self.n_views, d)

    def fuse(self, zu: torch.Tensor, zi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the views: ``(n_users x V x d, n_items x V x d) -> (P, Q)``."""
        if self.fusion == "concat":
            return self.user_fusion(zu.flatten(1)), self.item_fusion(zi.flatten(1))
        return self.user_fusion(zu.mean(dim=1)), self.item_fusion(zi.mean(dim=1))

    def _views_at(self, rows, base, id_items, masked_view: int | None) -> torch.Tensor:
        """The read-out of every view at graph nodes ``rows``, from the propagated parts.

        Args:
            rows: node indices (users first, then items), or a slice.
            base: ``S [E_u; 0]``, ``N x d``.
            id_items: ``S [0; E_i]``, ``N x d``.
            masked_view: the view whose item half is zero, if any.

        Returns:
            ``len(rows) x V x d``.
        """
        user_part = base[rows]
        views = [user_part if masked_view == 0 else user_part + id_items[rows]]
        for k, name in enumerate(self.modalities, start=1):
            if masked_view == k:
                views.append(user_part)
                continue
            projection = self.projections[name]
            propagated = getattr(self, f"{name}_prop")[rows] @ projection.weight.T
            views.append(user_part + propagated + self.ones_prop[rows] * projection.bias)
        return torch.stack(views, dim=1)

    def encode(
        self,
        users: torch.Tensor | None = None,
        items: torch.Tensor | None = None,
        masked_view: int | None = None,
        dropout: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused representations of some users and items, and their items' views.

        Without dropout and with precomputed features, one sparse pass of width ``2d``
        propagates the user and ID embeddings, and only the requested rows of each modality
        view are formed. Otherwise all views are propagated together
        (:meth:`propagate_views`). Both give the same numbers.

        Args:
            users: user ids, or ``None`` for all users.
            items: item ids, or ``None`` for all items.
            masked_view: a view whose item half starts as zeros (feature masking).
            dropout: dropout on each layer's output (feature dropout).

        Returns:
            ``P[users]`` (``B_u x d``), ``Q[items]`` (``B_i x d``) and the item views
            ``zi[items]`` (``B_i x V x d``).
        """
        if self.precompute_features and dropout == 0:
            d = self.embedding_size
            user_e = self.user_embedding.weight
            item_e = self.item_embedding.weight
            ego = torch.cat(
                [
                    torch.cat([user_e, user_e.new_zeros(self.n_users, d)], dim=1),
                    torch.cat([item_e.new_zeros(self.n_items, d), item_e], dim=1),
                ]
            )
            out = lightgcn_propagate(
                self.norm_adj, ego, self.n_layers, symmetric=self.adj_type == "pre"
            )
            base, id_items = out[:, :d], out[:, d:]
            user_rows = slice(0, self.n_users) if users is None else users
            item_rows = slice(self.n_users, None) if items is None else items + self.n_users
            zu = self._views_at(user_rows, base, id_items, masked_view)
            zi = self._views_at(item_rows, base, id_items, masked_view)
        else:
            zu, zi = self.propagate_views(masked_view, dropout)
            zu = zu if users is None else zu[users]
            zi = zi if items is None else zi[items]
        user_e, item_e = self.fuse(zu, zi)
        return user_e, item_e, zi

    def forward(
        self, masked_view: int | None = None, dropout: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The final representations of all users and items.

        Returns:
            ``P`` (``n_users x d``), ``Q`` (``n_items x d``) and the item view read-outs
            ``zi`` (``n_items x V x d``).
        """
        return self.encode(masked_view=masked_view, dropout=dropout)

    def fac_loss(self, zi: torch.Tensor) -> torch.Tensor:
        """Fine-and-coarse alignment over the batch's positive items (raw dot logits).

        Args:
            zi: the views of the batch's items, ``B x V x d``.
        """
        x = zi[:, 0]
        loss = zi.new_zeros(())
        for stage, (id_head, modality_head) in enumerate(
            zip(self.fac_id_heads, self.fac_modality_heads)
        ):
            x = id_head(x)
            y = modality_head(zi[:, stage + 1])
            loss = loss + info_nce(x, y, self.ssl_temp)
        return loss

    def _pair_loss(self, first, second) -> torch.Tensor:
        u1, u2 = F.normalize(first[0], dim=1), F.normalize(second[0], dim=1)
        i1, i2 = F.normalize(first[1], dim=1), F.normalize(second[1], dim=1)
        return info_nce(u1, u2, self.ssl_temp) + info_nce(i1, i2, self.ssl_temp)

    def draw_masked_views(self) -> tuple[int, int]:
        """Two different views, drawn uniformly among the ``V`` views (ID included)."""
        first, second = torch.randperm(self.n_views)[:2].tolist()
        return first, second

    def ssl_loss(self, zi, users, items) -> torch.Tensor:
        """The self-supervised loss of ``ssl_task`` for a batch.

        Args:
            zi: the views of the batch's items, ``B x V x d``.
            users: the batch's user ids.
            items: the batch's item ids.
        """
        if self.ssl_task == "FAC":
            return self.fac_loss(zi)
        if self.ssl_task == "FD":
            first = self.encode(users, items, dropout=self.dropout_rate)
            second = self.encode(users, items, dropout=self.dropout_rate)
            return self._pair_loss(first, second)
        dropout = self.dropout_rate if self.ssl_task == "FD+FM" else 0.0
        view_a, view_b = self.draw_masked_views()
        first = self.encode(users, items, masked_view=view_a, dropout=dropout)
        second = self.encode(users, items, masked_view=view_b, dropout=dropout)
        return self._pair_loss(first, second)

    def calculate_loss(self, interaction):
        # the weights are about to change: the inference cache is stale
        self.restore_user_e = None
        self.restore_item_e = None

        users = interaction[self.USER_ID]
        items = interaction[self.ITEM_ID]
        user_e, item_e, zi = self.encode(users, items)

        # in-batch InfoNCE on cosine similarity
        exclude = offset = None
        if self.mask_train_positives:
            index = (self.train_indptr, self.train_indices)
            exclude = accidental_hits(index, self.n_items, users, items)
        if self.logq_correction:
            offset = -self.item_log_share[items]
        loss = info_nce(
            F.normalize(user_e, dim=1),
            F.normalize(item_e, dim=1),
            self.temp,
            exclude=exclude,
            column_offset=offset,
        )
        if self.ssl_task != "none" and self.ssl_alpha > 0:
            loss = loss + self.ssl_alpha * self.ssl_loss(zi, users, items)
        return loss

    def _inference_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.restore_user_e is None or self.restore_item_e is None:
            user_e, item_e, _ = self.forward()
            if self.score_type == "cosine":
                user_e, item_e = F.normalize(user_e, dim=1), F.normalize(item_e, dim=1)
            self.restore_user_e, self.restore_item_e = user_e.detach(), item_e.detach()
        return self.restore_user_e, self.restore_item_e
