"""VBPR.

Reference:
    Ruining He and Julian McAuley. "VBPR: Visual Bayesian Personalized Ranking from Implicit
    Feedback." AAAI Conference on Artificial Intelligence, 2016. doi:10.1609/aaai.v30i1.9973
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType
from torch import nn

from recbole_slmrec.data.features import FeatureError
from recbole_slmrec.model.abstract import MultiModalRecommender, check_float, check_int


class VBPR(MultiModalRecommender):
    r"""Matrix factorisation with a content term, trained with BPR.

    The score of user ``u`` and item ``i`` is the paper's full preference predictor less the
    terms that every item of a user shares (the global and user biases, which cancel in BPR and
    in ranking):

    ``s(u, i) = gamma_u . gamma_i + theta_u . (E f_i) + beta_i + beta' . f_i``

    where ``f_i`` (width ``F``) is the concatenation of the item's features of every declared
    modality, in declaration order; ``E`` (``F -> d``) projects it; ``beta_i`` is the item bias
    and ``beta'`` (width ``F``) the content bias. ``gamma_u``, ``gamma_i`` and ``theta_u`` are
    each ``embedding_size`` (``d``) wide, so a user has ``2d`` factors. ``predict`` and
    ``full_sort_predict`` both use all four terms: the user vector ``[gamma_u ; theta_u ; 1]``
    is dotted with the item vector ``[gamma_i ; E f_i ; beta_i + beta' . f_i]``.

    Dense features are L2-normalised per row at load (``normalize_features``), so that no
    modality dominates the concatenation by its scale; word-id modalities enter through their
    learned bag-of-words embedding. The loss is BPR with one sampled negative plus
    ``reg_weight`` times the squared L2 norms of the batch's ``gamma_u``, ``theta_u``, and
    ``gamma`` and ``beta`` of its positive and negative items, divided by the batch size; Adam's
    ``weight_decay`` (1e-4 by default) regularises every parameter, the projection ``E`` and
    the content bias ``beta'`` included, as the paper's ``lambda_Theta ||Theta||^2`` does.

    Note:
        Without the weight decay ``E`` and ``beta'`` are unregularised. On the real Tiktok copy
        (lr 1e-3, seed 2020) validation Recall@20 then peaks at epoch 1 (0.036) and falls below
        0.02 as the content term overfits; with ``weight_decay`` 1e-4 it still rises at
        epoch 29 (0.051).
    """

    input_type = InputType.PAIRWISE
    normalize_features = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.embedding_size = check_int("embedding_size", config["embedding_size"], 1)
        self.reg_weight = check_float("reg_weight", config["reg_weight"], 0.0)
        if not self.modalities:
            raise FeatureError(
                "VBPR needs at least one modality, but the dataset declares none: add a "
                "`modalities` list to its YAML (see docs/DATA_FORMAT.md)"
            )
        self.feature_width = sum(self.modality_widths[name] for name in self.modalities)

        # define layers
        self.user_gamma = nn.Embedding(self.n_users, self.embedding_size)
        self.user_theta = nn.Embedding(self.n_users, self.embedding_size)
        self.item_gamma = nn.Embedding(self.n_items, self.embedding_size)
        self.item_bias = nn.Embedding(self.n_items, 1)
        self.feature_projection = nn.Linear(self.feature_width, self.embedding_size, bias=False)
        self.content_bias = nn.Linear(self.feature_width, 1, bias=False)

        # the inference cache, filled lazily by full_sort_predict
        self.restore_user_e = None
        self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

        # parameters initialization
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal factors, Xavier-uniform ``E``, zero biases; clears the cache."""
        for embedding in (self.user_gamma, self.user_theta, self.item_gamma):
            nn.init.xavier_normal_(embedding.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.xavier_uniform_(self.feature_projection.weight)
        nn.init.zeros_(self.content_bias.weight)
        for bag in self.word_bags.values():
            nn.init.xavier_uniform_(bag.weight)
            with torch.no_grad():
                bag.weight[0].zero_()
        self.restore_user_e = None
        self.restore_item_e = None

    def item_features(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The concatenated features ``f``: ``B x F`` for ``items``, ``n_items x F`` for all."""
        parts = []
        for name in self.modalities:
            feature = self.modality_input(name)
            parts.append(feature if items is None else feature[items])
        return torch.cat(parts, dim=1)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``[gamma_u ; theta_u ; 1]`` of ``users``: ``B x (2d + 1)``."""
        gamma, theta = self.user_gamma(users), self.user_theta(users)
        return torch.cat([gamma, theta, gamma.new_ones(gamma.shape[0], 1)], dim=1)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``[gamma_i ; E f_i ; beta_i + beta' . f_i]``: ``B x (2d + 1)``, or all items."""
        if items is None:
            gamma, bias = self.item_gamma.weight, self.item_bias.weight
        else:
            gamma, bias = self.item_gamma(items), self.item_bias(items)
        features = self.item_features(items)
        content = self.feature_projection(features)
        return torch.cat([gamma, content, bias + self.content_bias(features)], dim=1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The scores ``s(u, i)`` of the pairs ``(users[b], items[b])``: shape ``B``."""
        return (self.user_vectors(users) * self.item_vectors(items)).sum(dim=1)

    def calculate_loss(self, interaction):
        # the weights are about to change: the inference cache is stale
        self.restore_user_e = None
        self.restore_item_e = None

        users = interaction[self.USER_ID]
        pos_items = interaction[self.ITEM_ID]
        neg_items = interaction[self.NEG_ITEM_ID]
        bpr = F.softplus(self.forward(users, neg_items) - self.forward(users, pos_items)).mean()

        batch = (
            self.user_gamma(users),
            self.user_theta(users),
            self.item_gamma(pos_items),
            self.item_gamma(neg_items),
            self.item_bias(pos_items),
            self.item_bias(neg_items),
        )
        reg = sum((tensor**2).sum() for tensor in batch) / users.shape[0]
        return bpr + self.reg_weight * reg

    def _inference_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.restore_user_e is None or self.restore_item_e is None:
            all_users = torch.arange(self.n_users, device=self.user_gamma.weight.device)
            self.restore_user_e = self.user_vectors(all_users).detach()
            self.restore_item_e = self.item_vectors().detach()
        return self.restore_user_e, self.restore_item_e
