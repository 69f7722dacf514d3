"""Tests of VBPR: its score against the paper's formula, its features, training end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mm_fixtures import DENSE_WIDTHS, N_ITEMS, NAME, QUIET, TEXT_WIDTH, build, write_dataset
from recbole.data.interaction import Interaction

from recbole_slmrec.compat import load_checkpoint
from recbole_slmrec.model.general_recommender import VBPR
from recbole_slmrec.quick_start import run
from recbole_slmrec.utils import get_model

ALL = ("visual", "acoustic", "textual")


def _model(tmp_path, modalities=ALL, **overrides):
    write_dataset(tmp_path, modalities)
    config, train_data, _, test_data = build("VBPR", tmp_path, **overrides)
    return VBPR(config, train_data._dataset), train_data, test_data


def _dense_features(folder, name: str, dataset) -> torch.Tensor:
    """The ``name`` matrix of the folder, L2-normalised and in RecBole's item order."""
    matrix = np.load(folder / f"{NAME}.{name}.npy")
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    aligned = np.zeros((dataset.item_num, matrix.shape[1]), dtype=np.float32)
    for row in range(N_ITEMS):
        aligned[dataset.token2id(dataset.iid_field, f"i{row}")] = matrix[row]
    return torch.from_numpy(aligned)


def test_scores_match_the_formula(tmp_path):
    model, train_data, _ = _model(tmp_path)
    model.eval()
    with torch.no_grad():
        # the biases start at zero: give them values, so that the check covers them
        model.item_bias.weight.normal_()
        model.content_bias.weight.normal_()
    dataset = train_data._dataset
    folder = tmp_path / NAME
    features = torch.cat(
        [
            _dense_features(folder, "visual", dataset),
            _dense_features(folder, "acoustic", dataset),
            model.word_bags["textual"](model.textual_tokens),
        ],
        dim=1,
    ).detach()
    assert features.shape == (model.n_items, sum(DENSE_WIDTHS.values()) + TEXT_WIDTH)

    gamma_u, theta_u = model.user_gamma.weight.detach(), model.user_theta.weight.detach()
    gamma_i, beta_i = model.item_gamma.weight.detach(), model.item_bias.weight.detach()[:, 0]
    e, beta_f = model.feature_projection.weight.detach(), model.content_bias.weight.detach()[0]
    expected = gamma_u @ gamma_i.T + theta_u @ (features @ e.T).T + beta_i + features @ beta_f

    users = torch.tensor([1, 2, 3, 4, 5, 6, 1])
    items = torch.tensor([3, 1, 7, 2, 8, 5, 24])
    pairs = Interaction({model.USER_ID: users, model.ITEM_ID: items})
    assert torch.allclose(model.predict(pairs), expected[users, items], atol=1e-5)
    assert torch.allclose(model.forward(users, items).detach(), expected[users, items], atol=1e-5)
    full = model.full_sort_predict(Interaction({model.USER_ID: users}))
    assert full.shape == (len(users) * model.n_items,)
    assert torch.allclose(full.view(len(users), model.n_items), expected[users], atol=1e-5)


def test_widths_follow_the_modalities(tmp_path):
    model, _, _ = _model(tmp_path, ("acoustic", "visual"), embedding_size=6)
    assert model.feature_width == 8
    assert model.feature_projection.weight.shape == (6, 8)
    assert model.user_gamma.weight.shape == model.user_theta.weight.shape == (model.n_users, 6)
    assert model.restore_user_e is None
    model.full_sort_predict(Interaction({model.USER_ID: torch.tensor([1])}))
    assert model.restore_user_e.shape == (model.n_users, 2 * 6 + 1)
    assert model.restore_item_e.shape == (model.n_items, 2 * 6 + 1)


def test_loss_decreases_and_clears_the_cache(tmp_path):
    model, train_data, _ = _model(tmp_path)
    batch = next(iter(train_data))
    model.full_sort_predict(Interaction({model.USER_ID: torch.tensor([1])}))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.restore_user_e is None and model.restore_item_e is None
    assert losses[-1] < 0.8 * losses[0]


def test_reg_weight_adds_the_batch_l2(tmp_path):
    model, train_data, _ = _model(tmp_path, reg_weight=0.0)
    batch = next(iter(train_data))
    plain = model.calculate_loss(batch).item()
    model.reg_weight = 0.5
    users = batch[model.USER_ID]
    terms = [model.user_gamma(users), model.user_theta(users)]
    for items in (batch[model.ITEM_ID], batch[model.NEG_ITEM_ID]):
        terms += [model.item_gamma(items), model.item_bias(items)]
    l2 = sum((t**2).sum() for t in terms).item() / len(users)
    assert model.calculate_loss(batch).item() == pytest.approx(plain + 0.5 * l2, rel=1e-5)


def test_no_modality_raises(tmp_path):
    with pytest.raises(ValueError, match="at least one modality"):
        _model(tmp_path, ())


def test_model_lookup_and_defaults(tmp_path):
    assert get_model("VBPR") is VBPR
    write_dataset(tmp_path)
    config, _, _, _ = build("VBPR", tmp_path)
    assert config["embedding_size"] == 64 and config["learning_rate"] == 0.001
    assert config["train_batch_size"] == 2048 and config["reg_weight"] == 0.0001
    assert config["train_neg_sample_args"]["sample_num"] == 1


@pytest.mark.parametrize("modalities", [("visual",), ("visual", "acoustic"), ("textual",)])
def test_end_to_end(tmp_path, monkeypatch, modalities):
    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path, modalities)
    overrides = {"epochs": 2, "train_batch_size": 8, **QUIET}
    result = run(
        "VBPR",
        NAME,
        config_dict={
            "data_path": str(tmp_path),
            "checkpoint_dir": str(tmp_path / "saved"),
            **overrides,
        },
    )
    test_result = result["test_result"]
    for key in ("recall@20", "ndcg@20", "precision@10"):
        assert 0.0 <= test_result[key] <= 1.0
    assert len(result["history"]) == 2

    # the saved best model reloads and ranks every item for every test user
    config, train_data, _, test_data = build("VBPR", tmp_path, **overrides)
    model = VBPR(config, train_data._dataset)
    model.load_state_dict(load_checkpoint(result["model_file"], "cpu")["state_dict"])
    model.eval()
    interaction = next(iter(test_data))[0]
    scores = model.full_sort_predict(interaction)
    assert scores.shape == (len(interaction[model.USER_ID]) * model.n_items,)
    assert torch.isfinite(scores).all()


def test_weight_decay_regularises_the_content_parameters(tmp_path):
    # E and beta' enter no reg_weight term: the optimiser's weight decay is what regularises them
    from recbole_slmrec.trainer import get_trainer

    write_dataset(tmp_path, ALL)
    config, train_data, _, _ = build("VBPR", tmp_path, checkpoint_dir=str(tmp_path / "saved"))
    model = VBPR(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    decayed = {
        id(p)
        for group in trainer.optimizer.param_groups
        if group["weight_decay"] > 0
        for p in group["params"]
    }
    assert config["weight_decay"] == pytest.approx(1e-4)
    assert id(model.feature_projection.weight) in decayed
    assert id(model.content_bias.weight) in decayed
