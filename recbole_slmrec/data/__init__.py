"""Data hooks: multimodal item features aligned to RecBole's item ids, and the demo dataset."""

from recbole_slmrec.data.features import (
    DenseFeature,
    FeatureError,
    ItemFeatures,
    Modality,
    TokenFeature,
    load_item_features,
    parse_modalities,
)

__all__ = [
    "DenseFeature",
    "FeatureError",
    "ItemFeatures",
    "Modality",
    "TokenFeature",
    "load_item_features",
    "parse_modalities",
]
