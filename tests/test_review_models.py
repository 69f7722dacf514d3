"""The multimodal models on edge cases: bad settings, batches of one, cold users and items."""

import numpy as np
import pytest
import torch
from conftest import quiet_config, write_dataset
from recbole.data import create_dataset, data_preparation

from recbole_slmrec.config import Config
from recbole_slmrec.data.features import FeatureError
from recbole_slmrec.model.abstract import ModelConfigError
from recbole_slmrec.model.general_recommender.mmgcn import MMGCN
from recbole_slmrec.model.general_recommender.slmrec import SLMRec
from recbole_slmrec.model.general_recommender.vbpr import VBPR

MODELS = {"SLMRec": SLMRec, "MMGCN": MMGCN, "VBPR": VBPR}


def build(tmp_path, model="SLMRec", **overrides):
    config = Config(model, "tiny", config_dict=quiet_config(tmp_path, **overrides))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    torch.manual_seed(0)
    return MODELS[model](config, train._dataset), train, dataset


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("n_layers", -1, r"`n_layers` is -1; expected an integer >= 0"),
        ("n_layers", 1.5, r"`n_layers` is 1.5; expected an integer >= 0"),
        ("embedding_size", 0, r"`embedding_size` is 0; expected an integer >= 1"),
        ("temp", 0, r"`temp` is 0; expected a number in \(0.0, inf\)"),
        ("ssl_temp", -0.2, r"`ssl_temp` is -0.2; expected a number in \(0.0, inf\)"),
        ("ssl_alpha", -1.0, r"`ssl_alpha` is -1.0; expected a number in \[0.0, inf\)"),
        ("dropout_rate", 1.0, r"`dropout_rate` is 1.0; expected a number in \[0.0, 1.0\)"),
    ],
)
def test_slmrec_refuses_settings_that_would_train_on_nan(tmp_path, key, value, message):
    # n_layers -1 divided the readout by zero and temp 0 made every logit infinite: both
    # trained an epoch and stopped on "Training loss is nan"
    write_dataset(tmp_path)
    with pytest.raises(ModelConfigError, match=message):
        build(tmp_path, **{key: value})


@pytest.mark.parametrize("model", ["MMGCN", "VBPR"])
def test_baselines_refuse_bad_sizes_and_weights(tmp_path, model):
    write_dataset(tmp_path)
    with pytest.raises(ModelConfigError, match="`embedding_size` is 0"):
        build(tmp_path, model, embedding_size=0)
    with pytest.raises(ModelConfigError, match="`reg_weight` is -0.1"):
        build(tmp_path, model, reg_weight=-0.1)


def test_fac_with_three_modalities_needs_two_dimensions(tmp_path):
    write_dataset(tmp_path, words=True)
    with pytest.raises(ModelConfigError, match="embedding_size of at least 2"):
        build(tmp_path, embedding_size=1)
    model, _, _ = build(tmp_path, embedding_size=7)
    # an odd width: the third stage aligns in 7 // 2 = 3 dimensions
    assert [head.out_features for head in model.fac_id_heads] == [7, 7, 3]
    assert [head.in_features for head in model.fac_id_heads] == [7, 7, 7]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_no_modality_is_a_feature_error(tmp_path, model):
    write_dataset(tmp_path, dense={})
    with pytest.raises(FeatureError, match="needs at least one modality"):
        build(tmp_path, model)


def add_cold_user_and_item(folder):
    """A user only in test, and an item only in valid, both with features."""
    with open(folder / "tiny.test.inter", "a", encoding="utf-8") as f:
        f.write("ucold\ti0\n")
    with open(folder / "tiny.valid.inter", "a", encoding="utf-8") as f:
        f.write("u0\ticold\n")
    for modality in ("visual", "acoustic"):
        matrix = np.load(folder / f"tiny.{modality}.npy")
        np.save(folder / f"tiny.{modality}.npy", np.vstack([matrix, np.ones_like(matrix[:1])]))
        with open(folder / f"tiny.{modality}.ids", "a", encoding="utf-8") as f:
            f.write("icold\n")


@pytest.mark.parametrize(
    "model, overrides",
    [
        ("SLMRec", {"n_layers": 0}),
        ("SLMRec", {"ssl_task": "FD+FM", "fusion": "mean", "score_type": "cosine"}),
        ("SLMRec", {"ssl_task": "FM"}),
        ("MMGCN", {}),
        ("VBPR", {}),
    ],
)
def test_batch_of_one_and_users_and_items_off_the_training_graph(tmp_path, model, overrides):
    add_cold_user_and_item(write_dataset(tmp_path))
    net, train, dataset = build(tmp_path, model, train_batch_size=1, **overrides)
    cold_user = dataset.token2id(dataset.uid_field, "ucold")
    cold_item = dataset.token2id(dataset.iid_field, "icold")
    degree = net.build_adjacency(train._dataset).to_dense().abs().sum(dim=1)
    assert degree[cold_user] == 0 and degree[net.n_users + cold_item] == 0

    interaction = next(iter(train))
    assert len(interaction) == 1
    loss = net.calculate_loss(interaction)
    assert torch.isfinite(loss)
    loss.backward()
    net.eval()
    with torch.no_grad():
        users = torch.tensor([cold_user, 1])
        scores = net.full_sort_predict({net.USER_ID: users}).view(2, -1)
    assert scores.shape == (2, net.n_items) and torch.isfinite(scores).all()
