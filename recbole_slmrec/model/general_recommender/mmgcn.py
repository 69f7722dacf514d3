"""MMGCN.

Reference:
    Yinwei Wei, Xiang Wang, Liqiang Nie, Xiangnan He, Richang Hong and Tat-Seng Chua.
    "MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation of
    Micro-video." ACM Multimedia, 2019. doi:10.1145/3343031.3351034
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
from recbole_slmrec.model.graph import normalized_adjacency, spmm, to_torch_csr

AGGREGATIONS = ("mean", "add")
COMBINATIONS = ("concat", "element")


class MMGCNLayer(nn.Module):
    r"""One graph convolution layer of a modality's network.

    With ``x`` the ``N x d_in`` node features, ``A`` the aggregation matrix and ``e`` the
    ``N x d`` ID embeddings:

    * aggregation: ``h = leaky_relu(A (x W))``, ``W`` of shape ``d_in x d_in``;
    * skip branch: ``x_hat = leaky_relu(x W2 + b2) + e``, ``W2`` of shape ``d_in x d``;
    * combination: ``leaky_relu([h ; x_hat] W3 + b3)`` (concat, ``W3`` of shape
      ``(d_in + d) x d``) or ``leaky_relu(h W3 + b3 + x_hat)`` (element, ``W3`` of shape
      ``d_in x d``).

    Args:
        in_dim: input width ``d_in``.
        out_dim: output width ``d`` (the ID embedding width).
        combination: ``concat`` or ``element``.
    """

    def __init__(self, in_dim: int, out_dim: int, combination: str):
        super().__init__()
        self.combination = check_choice("combination", combination, COMBINATIONS)
        self.conv = nn.Linear(in_dim, in_dim, bias=False)
        self.skip = nn.Linear(in_dim, out_dim)
        combine_in = in_dim + out_dim if combination == "concat" else in_dim
        self.combine = nn.Linear(combine_in, out_dim)

    def forward(
        self, x: torch.Tensor, adj: torch.Tensor, id_embedding: torch.Tensor, symmetric: bool
    ) -> torch.Tensor:
        """Apply the layer.

        Args:
            x: ``N x d_in`` node features, users first then items.
            adj: ``N x N`` sparse aggregation matrix (``D^-1 A`` for mean, ``A`` for add).
            id_embedding: ``N x d`` ID embeddings.
            symmetric: whether ``adj`` is symmetric.

        Returns:
            ``N x d`` node features of the next layer.
        """
        h = F.leaky_relu(spmm(adj, self.conv(x), symmetric))
        x_hat = F.leaky_relu(self.skip(x)) + id_embedding
        if self.combination == "concat":
            return F.leaky_relu(self.combine(torch.cat([h, x_hat], dim=1)))
        return F.leaky_relu(self.combine(h) + x_hat)


class ModalityGraph(nn.Module):
    """The graph network of one modality: user preferences, item features, ``L`` layers.

    Args:
        n_users: number of users, padding included.
        feature_width: input width ``d_m`` of the modality.
        latent_dim: items are projected to this width when ``d_m > latent_dim``; ``None``
            never projects.
        embedding_size: width ``d`` of every layer's output.
        n_layers: number of layers ``L``.
        combination: ``concat`` or ``element``.
    """

    def __init__(
        self,
        n_users: int,
        feature_width: int,
        latent_dim: int | None,
        embedding_size: int,
        n_layers: int,
        combination: str,
    ):
        super().__init__()
        project = latent_dim is not None and feature_width > latent_dim
        width = latent_dim if project else feature_width
        self.projection = nn.Linear(feature_width, width) if project else nn.Identity()
        self.preference = nn.Parameter(torch.empty(n_users, width))
        widths = [width] + [embedding_size] * (n_layers - 1)
        self.layers = nn.ModuleList(MMGCNLayer(w, embedding_size, combination) for w in widths)

    def node_features(self, features: torch.Tensor) -> torch.Tensor:
        """Layer-0 features: ``normalize([P_m ; proj(X_m)])``, ``(n_users + n_items) x d_m'``."""
        items = self.projection(features)
        return F.normalize(torch.cat([self.preference, items], dim=0), p=2, dim=1)

    def forward(
        self,
        features: torch.Tensor,
        adj: torch.Tensor,
        id_embedding: torch.Tensor,
        symmetric: bool,
    ) -> torch.Tensor:
        """The last layer's output, ``(n_users + n_items) x d``, from ``n_items x d_m`` features."""
        x = self.node_features(features)
        for layer in self.layers:
            x = layer(x, adj, id_embedding, symmetric)
        return x


class MMGCN(MultiModalRecommender):
    r"""Multi-modal graph convolution network.

    Every modality has its own graph network over the same user-item graph of the training
    interactions. A modality's layer-0 node features are its learned user preferences ``P_m``
    stacked over its item features (linearly projected to ``latent_dim`` when wider), L2
    normalised per row. Each layer aggregates the neighbours' linearly mapped features (mean or
    sum), adds a skip branch carrying the ID embeddings shared by all modalities, and combines
    the two (see :class:`MMGCNLayer`). A node's representation is the mean over modalities of
    the last layer's output; the score is the dot product. Training minimises BPR with one
    sampled negative plus ``reg_weight`` times the sum of: the mean squared ID embedding of
    the batch's users, of its positive items and of its negative items, and the mean squared
    entry of every preference matrix.

    Item features wider than ``latent_dim`` are projected to ``latent_dim``, narrower ones are
    used as they are (with ``latent_dim`` 256 this is the reference's choice: only the 2048-d
    visual features were projected); ``latent_dim`` null never projects. The aggregation
    layer keeps its input width, later layers are ``embedding_size`` wide.

    Note:
        The number of layers follows ``n_layers``: the reference built three layers whatever it
        was set to, so the setting silently did nothing.
        The ID embeddings and user preferences are parameters: the reference held them in plain
        tensors that the optimiser never updated, so they stayed at their random start.
        Adam weight decay defaults to 0 and ``reg_weight`` carries the regularisation: now that
        the embeddings learn, the reference's weight decay of 0.1 would pull every embedding to
        zero at each step.
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size = check_int("embedding_size", config["embedding_size"], 1)
        self.n_layers = config["n_layers"]
        self.latent_dim = config["latent_dim"]
        self.reg_weight = check_float("reg_weight", config["reg_weight"], 0.0)
        self.aggregation = check_choice("aggregation", config["aggregation"], AGGREGATIONS)
        self.combination = check_choice("combination", config["combination"], COMBINATIONS)
        check_int("n_layers", self.n_layers, 1)
        if self.latent_dim is not None and (
            isinstance(self.latent_dim, bool)
            or not isinstance(self.latent_dim, int)
            or self.latent_dim < 1
        ):
            raise ModelConfigError(
                f"`latent_dim` is {self.latent_dim!r}; expected a positive int or null"
            )
        if not self.modalities:
            raise FeatureError(
                "MMGCN needs at least one modality, but the dataset declares none: add a "
                "`modalities` list to its YAML (see docs/DATA_FORMAT.md)"
            )

        # define layers
        self.id_embedding = nn.Parameter(
            torch.empty(self.n_users + self.n_items, self.embedding_size)
        )
        self.graphs = nn.ModuleDict(
            {
                name: ModalityGraph(
                    self.n_users,
                    self.modality_widths[name],
                    self.latent_dim,
                    self.embedding_size,
                    self.n_layers,
                    self.combination,
                )
                for name in self.modalities
            }
        )

        # the graph of the training interactions: D^-1 A (mean) or A (add)
        self.register_buffer("adj", self.aggregation_matrix(dataset), persistent=False)

        # the inference cache, filled lazily by full_sort_predict
        self.restore_user_e = None
        self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

        # parameters initialization
        self.reset_parameters()

    def aggregation_matrix(self, dataset) -> torch.Tensor:
        """The aggregation matrix of ``dataset``'s interactions (see :meth:`aggregation_of`)."""
        return self.aggregation_of(dataset.inter_matrix(form="coo").astype("float32"))

    def aggregation_of(self, inter) -> torch.Tensor:
        """The ``(n_users + n_items)`` square sparse matrix that aggregates neighbours.

        ``mean`` is the row-normalised adjacency ``D^-1 A``; ``add`` is the binary adjacency
        ``A`` (the same sparsity pattern, every entry 1). Neither has self-loops.

        Args:
            inter: ``n_users x n_items`` interactions (scipy sparse).
        """
        adj = normalized_adjacency(inter, self.n_users, self.n_items, "mean")
        if self.aggregation == "add":
            adj.data[:] = 1.0
        return to_torch_csr(adj)

    def reset_parameters(self) -> None:
        """Xavier-normal embeddings and preferences, Xavier-uniform layers; clears the cache."""
        nn.init.xavier_normal_(self.id_embedding)
        for graph in self.graphs.values():
            nn.init.xavier_normal_(graph.preference)
        self.init_layers()

    def forward(self) -> torch.Tensor:
        """The node representations: the mean over modalities, ``(n_users + n_items) x d``."""
        symmetric = self.aggregation == "add"
        outputs = [
            self.graphs[name](self.modality_input(name), self.adj, self.id_embedding, symmetric)
            for name in self.modalities
        ]
        return torch.stack(outputs).mean(dim=0)

    def calculate_loss(self, interaction):
        # the weights are about to change: the inference cache is stale
        self.restore_user_e = None
        self.restore_item_e = None

        users = interaction[self.USER_ID]
        pos_nodes = interaction[self.ITEM_ID] + self.n_users
        neg_nodes = interaction[self.NEG_ITEM_ID] + self.n_users
        out = self.forward()
        user_e = out[users]
        pos_scores = (user_e * out[pos_nodes]).sum(dim=1)
        neg_scores = (user_e * out[neg_nodes]).sum(dim=1)
        bpr = F.softplus(neg_scores - pos_scores).mean()

        reg = sum((self.id_embedding[nodes] ** 2).mean() for nodes in (users, pos_nodes, neg_nodes))
        reg = reg + sum((graph.preference**2).mean() for graph in self.graphs.values())
        return bpr + self.reg_weight * reg

    def _inference_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.restore_user_e is None or self.restore_item_e is None:
            out = self.forward().detach()
            self.restore_user_e, self.restore_item_e = torch.split(
                out, [self.n_users, self.n_items]
            )
        return self.restore_user_e, self.restore_item_e
