"""Tests of MMGCN: its layer against dense algebra, its graph, its parameters, training."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from mm_fixtures import N_ITEMS, N_USERS, NAME, QUIET, TRAIN, build, write_dataset

from recbole_slmrec.compat import load_checkpoint
from recbole_slmrec.model.general_recommender import MMGCN
from recbole_slmrec.model.general_recommender.mmgcn import MMGCNLayer
from recbole_slmrec.model.graph import to_torch_csr
from recbole_slmrec.quick_start import run
from recbole_slmrec.utils import get_model

# 2 users, 3 items (nodes 0-1 users, 2-4 items); edges u0-i0, u0-i1, u1-i1, u1-i2
HAND_A = np.array(
    [
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 0, 0, 0],
    ],
    dtype=np.float64,
)
# D^-1 A by hand: degrees u0 2, u1 2, i0 1, i1 2, i2 1
HAND_MEAN = np.array(
    [
        [0, 0, 0.5, 0.5, 0],
        [0, 0, 0, 0.5, 0.5],
        [1, 0, 0, 0, 0],
        [0.5, 0.5, 0, 0, 0],
        [0, 1, 0, 0, 0],
    ],
    dtype=np.float64,
)


def _leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.01 * x)


def _dense_layer(layer: MMGCNLayer, x, adj, id_emb):
    """The layer's formula in dense torch algebra, from its own weights."""
    h = F.leaky_relu(adj @ (x @ layer.conv.weight.T))
    x_hat = F.leaky_relu(x @ layer.skip.weight.T + layer.skip.bias) + id_emb
    if layer.combination == "concat":
        return F.leaky_relu(
            torch.cat([h, x_hat], dim=1) @ layer.combine.weight.T + layer.combine.bias
        )
    return F.leaky_relu(h @ layer.combine.weight.T + layer.combine.bias + x_hat)


def _model(tmp_path, modalities=("visual", "acoustic"), **overrides):
    write_dataset(tmp_path, modalities)
    config, train_data, _, test_data = build("MMGCN", tmp_path, **overrides)
    return MMGCN(config, train_data._dataset), train_data, test_data


@pytest.mark.parametrize("aggregation", ["mean", "add"])
@pytest.mark.parametrize("combination", ["element", "concat"])
def test_layer_matches_dense_computation(aggregation, combination):
    torch.manual_seed(0)
    layer = MMGCNLayer(4, 3, combination)
    x = torch.randn(5, 4, requires_grad=True)
    id_emb = torch.randn(5, 3)
    dense = HAND_MEAN if aggregation == "mean" else HAND_A
    out = layer(x, to_torch_csr(sp.csr_matrix(dense)), id_emb, symmetric=aggregation == "add")
    (grad,) = torch.autograd.grad((out**2).sum(), x)

    # the same in numpy, step by step
    xn = x.detach().double().numpy()
    w = {key: value.double().numpy() for key, value in layer.state_dict().items()}
    h = _leaky(dense @ (xn @ w["conv.weight"].T))
    x_hat = _leaky(xn @ w["skip.weight"].T + w["skip.bias"]) + id_emb.double().numpy()
    if combination == "concat":
        joined = np.concatenate([h, x_hat], axis=1) @ w["combine.weight"].T
        expected = _leaky(joined + w["combine.bias"])
    else:
        expected = _leaky(h @ w["combine.weight"].T + w["combine.bias"] + x_hat)
    assert out.shape == (5, 3)
    assert torch.allclose(out.detach().double(), torch.from_numpy(expected), atol=1e-6)

    # and the gradient through the sparse product, against dense autograd
    dense_out = _dense_layer(layer, x, torch.from_numpy(dense).float(), id_emb)
    (dense_grad,) = torch.autograd.grad((dense_out**2).sum(), x)
    assert torch.allclose(grad, dense_grad, atol=1e-5)


@pytest.mark.parametrize("aggregation", ["mean", "add"])
def test_model_gradients_match_dense_graph(tmp_path, aggregation):
    model, _, _ = _model(tmp_path, aggregation=aggregation, n_layers=2)
    adj = model.adj.to_dense()
    outputs = []
    for name, graph in model.graphs.items():
        x = graph.node_features(model.modality_input(name))
        for layer in graph.layers:
            x = _dense_layer(layer, x, adj, model.id_embedding)
        outputs.append(x)
    dense_out = torch.stack(outputs).mean(dim=0)
    (dense_grad,) = torch.autograd.grad((dense_out**2).sum(), model.id_embedding)
    out = model.forward()
    (grad,) = torch.autograd.grad((out**2).sum(), model.id_embedding)
    assert torch.allclose(out, dense_out, atol=1e-5)
    assert torch.allclose(grad, dense_grad, atol=1e-5)


def test_aggregation_matrix_is_the_training_graph(tmp_path):
    for aggregation in ("mean", "add"):
        model, train_data, _ = _model(tmp_path, aggregation=aggregation)
        dataset = train_data._dataset
        n = model.n_users + model.n_items
        expected = np.zeros((n, n))
        for user, items in TRAIN.items():
            u = dataset.token2id(dataset.uid_field, f"u{user}")
            for item in items:
                i = model.n_users + dataset.token2id(dataset.iid_field, f"i{item}")
                expected[u, i] = expected[i, u] = 1.0
        if aggregation == "mean":
            degree = expected.sum(axis=1, keepdims=True)
            expected = np.divide(expected, degree, out=np.zeros_like(expected), where=degree > 0)
        assert np.allclose(model.adj.to_dense().numpy(), expected)


def test_n_layers_is_honoured(tmp_path):
    outputs, counts = {}, {}
    for n_layers in (1, 3):
        model, _, _ = _model(tmp_path, n_layers=n_layers)
        for graph in model.graphs.values():
            assert len(graph.layers) == n_layers
        counts[n_layers] = sum(p.numel() for p in model.parameters())

        # forward runs every layer: it equals the chain of all n_layers, not of fewer
        with torch.no_grad():
            out = model.forward()
            chains, short = [], []
            for name, graph in model.graphs.items():
                x = graph.node_features(model.modality_input(name))
                for depth, layer in enumerate(graph.layers):
                    x = layer(x, model.adj, model.id_embedding, symmetric=False)
                    if depth == 0:
                        short.append(x)
                chains.append(x)
        assert torch.allclose(out, torch.stack(chains).mean(dim=0), atol=1e-6)
        if n_layers == 3:
            assert not torch.allclose(out, torch.stack(short).mean(dim=0), atol=1e-3)
        outputs[n_layers] = out
    assert counts[3] > counts[1]
    assert not torch.allclose(outputs[1], outputs[3], atol=1e-3)


def test_latent_dim_projects_only_wider_modalities(tmp_path):
    model, _, _ = _model(tmp_path, latent_dim=4)
    visual, acoustic = model.graphs["visual"], model.graphs["acoustic"]
    assert isinstance(visual.projection, torch.nn.Linear)
    assert (visual.projection.in_features, visual.projection.out_features) == (5, 4)
    assert isinstance(acoustic.projection, torch.nn.Identity)
    assert visual.preference.shape == (model.n_users, 4)
    assert acoustic.preference.shape == (model.n_users, 3)
    assert visual.layers[0].conv.in_features == 4

    model, _, _ = _model(tmp_path, latent_dim=None)
    assert all(isinstance(g.projection, torch.nn.Identity) for g in model.graphs.values())
    assert model.graphs["visual"].preference.shape == (model.n_users, 5)


def test_embeddings_and_preferences_are_learned(tmp_path):
    model, train_data, _ = _model(tmp_path)
    params = list(model.parameters())
    learned = [model.id_embedding] + [g.preference for g in model.graphs.values()]
    for tensor in learned:
        assert any(tensor is p for p in params)
    assert model.id_embedding.shape == (model.n_users + model.n_items, model.embedding_size)

    before = [t.detach().clone() for t in learned]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    optimizer.zero_grad()
    model.calculate_loss(next(iter(train_data))).backward()
    optimizer.step()
    for old, new in zip(before, learned):
        assert not torch.equal(old, new.detach())


def test_loss_decreases(tmp_path):
    model, train_data, _ = _model(tmp_path)
    batch = next(iter(train_data))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_scores_and_cache(tmp_path):
    model, train_data, test_data = _model(tmp_path)
    model.eval()
    interaction = next(iter(test_data))[0]
    scores = model.full_sort_predict(interaction)
    n_batch = len(interaction[model.USER_ID])
    assert scores.shape == (n_batch * model.n_items,)
    assert model.restore_user_e.shape == (model.n_users, model.embedding_size)

    # predict agrees with full_sort_predict and with the dot product of the representation
    users = torch.tensor([1, 2, 3])
    items = torch.tensor([4, 5, 6])
    pairs = type(interaction)({model.USER_ID: users, model.ITEM_ID: items})
    out = model.forward().detach()
    expected = (out[users] * out[model.n_users + items]).sum(dim=1)
    assert torch.allclose(model.predict(pairs), expected, atol=1e-5)
    full = model.full_sort_predict(type(interaction)({model.USER_ID: users}))
    assert torch.allclose(full.view(3, model.n_items)[torch.arange(3), items], expected, atol=1e-5)

    # a training step clears the cache
    model.train()
    model.calculate_loss(next(iter(train_data)))
    assert model.restore_user_e is None and model.restore_item_e is None


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [("aggregation", "max", "mean, add"), ("combination", "sum", "concat, element")],
)
def test_unknown_choices_raise(tmp_path, key, value, accepted):
    with pytest.raises(ValueError, match=f"accepted values: {accepted}"):
        _model(tmp_path, **{key: value})


def test_bad_n_layers_and_no_modality_raise(tmp_path):
    with pytest.raises(ValueError, match="n_layers"):
        _model(tmp_path, n_layers=0)
    with pytest.raises(ValueError, match="at least one modality"):
        _model(tmp_path, modalities=())


def test_model_lookup_and_defaults(tmp_path):
    assert get_model("MMGCN") is MMGCN
    write_dataset(tmp_path)
    config, _, _, _ = build("MMGCN", tmp_path)
    assert config["n_layers"] == 2
    assert config["aggregation"] == "mean" and config["combination"] == "element"
    assert config["weight_decay"] == 0.0 and config["learning_rate"] == 0.0005
    assert config["train_neg_sample_args"]["sample_num"] == 1


@pytest.mark.parametrize("modalities", [("visual",), ("visual", "acoustic"), ("textual",)])
def test_end_to_end(tmp_path, monkeypatch, modalities):
    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path, modalities)
    overrides = {"epochs": 2, "train_batch_size": 8, "n_layers": 1, **QUIET}
    result = run(
        "MMGCN",
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
    config, train_data, _, test_data = build("MMGCN", tmp_path, **overrides)
    model = MMGCN(config, train_data._dataset)
    model.load_state_dict(load_checkpoint(result["model_file"], "cpu")["state_dict"])
    model.eval()
    interaction = next(iter(test_data))[0]
    scores = model.full_sort_predict(interaction)
    assert model.n_users == N_USERS + 1 and model.n_items == N_ITEMS + 1
    assert scores.shape == (len(interaction[model.USER_ID]) * model.n_items,)
    assert torch.isfinite(scores).all()
