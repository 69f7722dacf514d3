"""The base class of the plugin's multimodal models."""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from torch import nn

from recbole_slmrec.data.features import DenseFeature, load_item_features
from recbole_slmrec.model.graph import normalized_adjacency, to_torch_csr


class ModelConfigError(ValueError):
    """A model setting that is out of range or of the wrong type."""


def check_int(key: str, value, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; else a :class:`ModelConfigError` on ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelConfigError(f"`{key}` is {value!r}; expected an integer >= {minimum}")
    return value


def check_float(
    key: str, value, low: float, high: float | None = None, low_open: bool = False
) -> float:
    """``value`` as a float in ``[low, high)`` (``(low, high)`` when ``low_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bracket = "(" if low_open else "["
        upper = f"{high})" if high is not None else "inf)"
        raise ModelConfigError(
            f"`{key}` is {value!r}; expected a number in {bracket}{low}, {upper}"
        )
    return float(value)


def check_choice(key: str, value: str, accepted: tuple[str, ...]) -> str:
    """``value`` of configuration key ``key``, if it is one of ``accepted``.

    Raises:
        ModelConfigError: naming the key, the value and the accepted values.
    """
    if value not in accepted:
        raise ModelConfigError(f"`{key}` is {value!r}; accepted values: {', '.join(accepted)}")
    return value


class MultiModalRecommender(GeneralRecommender):
    """A RecBole general recommender that reads the dataset's multimodal item features.

    On construction it loads every modality the dataset declares (``modalities`` in its YAML),
    aligned to RecBole's item ids. Dense matrices become non-persistent buffers
    ``<name>_feat`` (``n_items x d_m``; checkpoints do not carry them); word-id modalities get
    a learnable bag-of-words embedding whose output has the declared width.

    Attributes:
        modalities: modality names, in declaration order.
        modality_widths: input width ``d_m`` of each modality.
    """

    #: Whether dense features are L2-normalised per row once at load.
    normalize_features = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.modalities: list[str] = []
        self.modality_widths: dict[str, int] = {}
        self.word_bags = nn.ModuleDict()
        for feature in load_item_features(config, dataset):
            self.modalities.append(feature.name)
            self.modality_widths[feature.name] = feature.width
            if isinstance(feature, DenseFeature):
                matrix = torch.from_numpy(feature.matrix)
                if self.normalize_features:
                    matrix = nn.functional.normalize(matrix, p=2, dim=1)
                self.register_buffer(f"{feature.name}_feat", matrix, persistent=False)
            else:
                self.register_buffer(f"{feature.name}_tokens", feature.tokens, persistent=False)
                self.word_bags[feature.name] = nn.EmbeddingBag(
                    feature.vocab_size, feature.width, mode="mean", padding_idx=0
                )

    def init_layers(self) -> None:
        """Xavier-uniform weights and zero biases of every linear layer, Xavier-uniform word
        embeddings with a zero padding row; clears the inference cache."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.EmbeddingBag):
                nn.init.xavier_uniform_(module.weight)
                with torch.no_grad():
                    module.weight[0].zero_()
        self.restore_user_e = None
        self.restore_item_e = None

    def modality_input(self, name: str) -> torch.Tensor:
        """The ``n_items x d_m`` input features of modality ``name``."""
        if name in self.word_bags:
            return self.word_bags[name](getattr(self, f"{name}_tokens"))
        return getattr(self, f"{name}_feat")

    def build_adjacency(self, dataset, adj_type: str = "pre") -> torch.Tensor:
        """The normalised adjacency of ``dataset``'s interactions, as a sparse CSR tensor.

        ``dataset`` is the training dataset the model is built with, so the graph never holds
        validation or test interactions.
        """
        inter = dataset.inter_matrix(form="coo").astype("float32")
        return to_torch_csr(normalized_adjacency(inter, self.n_users, self.n_items, adj_type))

    def _inference_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached ``(n_users x d, n_items x d)`` scoring vectors, computed when missing."""
        raise NotImplementedError

    def predict(self, interaction):
        user_e, item_e = self._inference_embeddings()
        users = interaction[self.USER_ID]
        items = interaction[self.ITEM_ID]
        return (user_e[users] * item_e[items]).sum(dim=1)

    def full_sort_predict(self, interaction):
        user_e, item_e = self._inference_embeddings()
        return (user_e[interaction[self.USER_ID]] @ item_e.T).view(-1)
