"""SLMRec's views, fusion and losses against direct computations on a tiny graph."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import quiet_config, write_dataset
from recbole.data import create_dataset, data_preparation

from recbole_slmrec.config import Config
from recbole_slmrec.model.general_recommender.slmrec import SLMRec
from recbole_slmrec.model.losses import accidental_hits, info_nce, pair_index, pairs_contain


def build(tmp_path, words=False, **overrides):
    write_dataset(tmp_path, words=words)
    config = Config("SLMRec", "tiny", config_dict=quiet_config(tmp_path, **overrides))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    torch.manual_seed(0)
    return SLMRec(config, train._dataset), train, (valid, test)


def dense_adjacency(model):
    return model.norm_adj.to_dense()


def dense_views(model):
    """Per-view LightGCN propagation with a dense adjacency, written out directly."""
    adj = dense_adjacency(model)
    views_u, views_i = [], []
    items = [model.item_embedding.weight] + [
        model.projections[m](model.modality_input(m)) for m in model.modalities
    ]
    for item_half in items:
        layer = torch.cat([model.user_embedding.weight, item_half])
        layers = [layer]
        for _ in range(model.n_layers):
            layer = adj @ layer
            layers.append(layer)
        out = torch.stack(layers).mean(dim=0)
        views_u.append(out[: model.n_users])
        views_i.append(out[model.n_users :])
    return torch.stack(views_u, dim=1), torch.stack(views_i, dim=1)


def batch(train):
    return next(iter(train))


def test_features_are_row_normalised_and_views_follow_modalities(tmp_path):
    model, _, _ = build(tmp_path)
    assert model.modalities == ["visual", "acoustic"]
    assert model.n_views == 3
    norms = model.visual_feat[1:].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert model.user_fusion.in_features == 3 * 8


def test_fused_propagation_equals_dense_per_view(tmp_path):
    model, _, _ = build(tmp_path)
    zu, zi = model.propagate_views()
    du, di = dense_views(model)
    torch.testing.assert_close(zu, du, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(zi, di, rtol=1e-5, atol=1e-6)
    user_e, item_e, _ = model.forward()
    torch.testing.assert_close(user_e, model.user_fusion(du.flatten(1)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(item_e, model.item_fusion(di.flatten(1)), rtol=1e-5, atol=1e-6)


def test_mean_fusion_averages_views_with_d_to_d_layers(tmp_path):
    model, _, _ = build(tmp_path, fusion="mean")
    assert (model.user_fusion.in_features, model.user_fusion.out_features) == (8, 8)
    du, di = dense_views(model)
    user_e, item_e, _ = model.forward()
    torch.testing.assert_close(user_e, model.user_fusion(du.mean(1)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(item_e, model.item_fusion(di.mean(1)), rtol=1e-5, atol=1e-6)


def test_graph_holds_training_interactions_only(tmp_path):
    model, train, held_out = build(tmp_path)
    adj = dense_adjacency(model)
    train_ds = train._dataset
    users = train_ds.inter_feat[train_ds.uid_field].numpy()
    items = train_ds.inter_feat[train_ds.iid_field].numpy()
    edges = set(zip(users.tolist(), items.tolist()))
    nonzero = adj[: model.n_users, model.n_users :].nonzero().tolist()
    assert {(u, i) for u, i in nonzero} == edges
    assert len(edges) == 12 * 4, "4 train interactions per user"
    # every valid/test pair is absent from the graph
    for loader in held_out:
        inter = loader._dataset.inter_feat
        pairs = list(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))
        assert len(pairs) == 12
        for u, i in pairs:
            assert adj[u, model.n_users + i] == 0 and adj[model.n_users + i, u] == 0


def test_info_nce_equals_direct_formula():
    torch.manual_seed(3)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    logits = a @ b.T / 0.2
    expected = -np.mean([torch.log_softmax(logits[k], 0)[k].item() for k in range(5)])
    assert info_nce(a, b, 0.2).item() == pytest.approx(expected, rel=1e-5)


def test_main_loss_is_in_batch_infonce_on_cosine(tmp_path):
    model, train, _ = build(tmp_path, ssl_task="none")
    data = batch(train)
    user_e, item_e, _ = model.forward()
    p = F.normalize(user_e[data["user_id"]], dim=1)
    q = F.normalize(item_e[data["item_id"]], dim=1)
    logits = p @ q.T / 0.2
    expected = F.cross_entropy(logits, torch.arange(len(p)))
    torch.testing.assert_close(model.calculate_loss(data), expected)


@pytest.mark.parametrize("max_cells", [1, 7, 1 << 25])  # one query row per chunk, some, all
def test_pair_lookup_matches_a_python_set(max_cells):
    rows = torch.tensor([0, 0, 2, 3, 3, 3, 2])  # (2, 1) twice: duplicates are one pair
    cols = torch.tensor([1, 4, 1, 0, 2, 4, 1])
    index = pair_index(rows, cols, n_rows=5)
    assert index[0].tolist() == [0, 2, 2, 3, 6, 6]
    assert index[1].tolist() == [1, 4, 1, 0, 2, 4]
    truth = set(zip(rows.tolist(), cols.tolist()))
    q_rows = torch.tensor([0, 1, 2, 3, 4, 3])  # a repeated query row, a row without pairs
    q_cols = torch.tensor([0, 1, 2, 3, 4, 1])
    got = pairs_contain(index, 5, q_rows, q_cols, max_cells=max_cells)
    expected = torch.tensor([[(r, c) in truth for c in q_cols.tolist()] for r in q_rows.tolist()])
    assert torch.equal(got, expected)
    empty = pair_index(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 5)
    assert not pairs_contain(empty, 5, q_rows, q_cols).any()


def test_accidental_hits_are_the_users_other_positives():
    # user 1 has items {2, 3}; user 4 has item {3}
    index = pair_index(torch.tensor([1, 1, 4]), torch.tensor([2, 3, 3]), n_rows=6)
    users = torch.tensor([1, 4, 1])
    items = torch.tensor([2, 3, 3])
    hits = accidental_hits(index, 6, users, items)
    # row 0 (user 1): items 3 and 3 are its positives; row 1 (user 4): item 2 is not, the
    # second 3 is a repeat of its own; row 2 (user 1): item 2 is its positive, 3 is the target
    expected = torch.tensor([[False, True, True], [False, False, True], [True, True, False]])
    assert torch.equal(hits, expected)


def test_info_nce_leaves_excluded_logits_out():
    torch.manual_seed(4)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    exclude = torch.zeros(4, 4, dtype=torch.bool)
    exclude[0, 2] = exclude[3, 1] = True
    logits = a @ b.T / 0.5
    expected = []
    for k in range(4):
        keep = [j for j in range(4) if not exclude[k, j]]
        row = logits[k, keep]
        expected.append(-(logits[k, k] - torch.logsumexp(row, 0)).item())
    assert info_nce(a, b, 0.5, exclude=exclude).item() == pytest.approx(np.mean(expected), rel=1e-5)


def test_main_loss_can_mask_the_users_training_positives(tmp_path):
    model, train, _ = build(tmp_path, ssl_task="none", mask_train_positives=True)
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    inter = train._dataset.inter_feat
    positives = set(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))
    user_e, item_e, _ = model.forward()
    p = F.normalize(user_e[users], dim=1)
    q = F.normalize(item_e[items], dim=1)
    logits = p @ q.T / 0.2
    n_masked = 0
    terms = []
    for k in range(len(users)):
        keep = [
            j
            for j in range(len(items))
            if j == k or (users[k].item(), items[j].item()) not in positives
        ]
        n_masked += len(items) - len(keep)
        terms.append(logits[k, k] - torch.logsumexp(logits[k, keep], 0))
    assert n_masked > 0, "the fixture's batch must hold some accidental hits"
    torch.testing.assert_close(model.calculate_loss(data), -torch.stack(terms).mean())
    # the graph's pairs and the mask's pairs are the training interactions, nothing else
    assert model.train_indices.numel() == len(positives)


def test_logq_correction_subtracts_the_log_share_of_each_column_item(tmp_path):
    model, train, _ = build(tmp_path, ssl_task="none", logq_correction=True)
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    train_items = train._dataset.inter_feat["item_id"].tolist()
    share = torch.tensor([train_items.count(i) / len(train_items) for i in items.tolist()])
    user_e, item_e, _ = model.forward()
    p = F.normalize(user_e[users], dim=1)
    q = F.normalize(item_e[items], dim=1)
    logits = p @ q.T / 0.2 - share.log().unsqueeze(0)
    expected = F.cross_entropy(logits, torch.arange(len(p)))
    torch.testing.assert_close(model.calculate_loss(data), expected)
    # not a no-op on this fixture: the items' shares differ
    assert share.min() < share.max()
    plain = F.cross_entropy(p @ q.T / 0.2, torch.arange(len(p)))
    assert not torch.allclose(plain, expected)


def test_fac_stages_equal_direct_computation(tmp_path):
    model, train, _ = build(tmp_path, words=True)
    assert len(model.fac_id_heads) == 3, "three modalities give three stages"
    assert [h.out_features for h in model.fac_id_heads] == [8, 8, 4]
    items = batch(train)["item_id"]
    _, zi = dense_views(model)
    x = zi[items, 0]
    expected = 0.0
    for stage in range(3):
        x = x @ model.fac_id_heads[stage].weight.T + model.fac_id_heads[stage].bias
        head = model.fac_modality_heads[stage]
        y = zi[items, stage + 1] @ head.weight.T + head.bias
        logits = x @ y.T / 0.2
        expected = expected + F.cross_entropy(logits, torch.arange(len(items)))
    torch.testing.assert_close(model.fac_loss(model.forward()[2][items]), expected)


def test_fd_copies_coincide_without_dropout(tmp_path):
    model, train, _ = build(tmp_path, ssl_task="FD", dropout_rate=0.0)
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    user_e, item_e, zi = model.forward()
    u, i = F.normalize(user_e[users], dim=1), F.normalize(item_e[items], dim=1)
    expected = info_nce(u, u, 0.2) + info_nce(i, i, 0.2)
    torch.testing.assert_close(model.ssl_loss(zi, users, items), expected)


def test_fd_copies_differ_with_dropout(tmp_path):
    model, train, _ = build(tmp_path, ssl_task="FD", dropout_rate=0.5)
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    user_e, item_e, zi = model.forward()
    u, i = F.normalize(user_e[users], dim=1), F.normalize(item_e[items], dim=1)
    coincide = info_nce(u, u, 0.2) + info_nce(i, i, 0.2)
    assert not torch.isclose(model.ssl_loss(zi, users, items), coincide)


def spy_encode(model, monkeypatch):
    seen = []
    original = model.encode

    def spy(users=None, items=None, masked_view=None, dropout=0.0):
        seen.append((masked_view, dropout))
        return original(users, items, masked_view, dropout)

    monkeypatch.setattr(model, "encode", spy)
    return seen


@pytest.mark.parametrize("precompute", [True, False])
def test_fm_masks_exactly_one_different_view_per_copy(tmp_path, monkeypatch, precompute):
    model, train, _ = build(tmp_path, ssl_task="FM", precompute_features=precompute)
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    seen = spy_encode(model, monkeypatch)
    for _ in range(20):
        seen.clear()
        loss = model.ssl_loss(model.forward()[2][items], users, items)
        first, second = seen[1][0], seen[2][0]
        assert first != second and {first, second} <= {0, 1, 2}
        assert seen[1][1] == seen[2][1] == 0.0, "FM propagates without dropout"
        assert torch.isfinite(loss)
    # the masked view equals a propagation whose item half of that view is zero
    zi = model.encode(masked_view=1)[2]
    adj = dense_adjacency(model)
    ego = torch.cat([model.user_embedding.weight, torch.zeros(model.n_items, 8)])
    layers = [ego]
    for _ in range(model.n_layers):
        layers.append(adj @ layers[-1])
    expected = torch.stack(layers).mean(0)[model.n_users :]
    torch.testing.assert_close(zi[:, 1], expected, rtol=1e-5, atol=1e-6)


def test_fd_fm_masks_and_drops_out(tmp_path, monkeypatch):
    model, train, _ = build(tmp_path, ssl_task="FD+FM", dropout_rate=0.3)
    data = batch(train)
    seen = spy_encode(model, monkeypatch)
    model.ssl_loss(model.forward()[2][data["item_id"]], data["user_id"], data["item_id"])
    assert seen[1][0] is not None and seen[1][0] != seen[2][0]
    assert seen[1][1] == seen[2][1] == 0.3


@pytest.mark.parametrize("masked_view", [None, 0, 1, 2])
def test_precomputed_features_give_the_same_numbers_and_gradients(tmp_path, masked_view):
    fast, train, _ = build(tmp_path, precompute_features=True)
    slow, _, _ = build(tmp_path / "b", precompute_features=False)
    slow.load_state_dict(fast.state_dict())
    assert fast.precompute_features and not slow.precompute_features
    data = batch(train)
    users, items = data["user_id"], data["item_id"]
    out_fast = fast.encode(users, items, masked_view)
    out_slow = slow.encode(users, items, masked_view)
    for a, b in zip(out_fast, out_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    fast.calculate_loss(data).backward()
    slow.calculate_loss(data).backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_one_modality_draws_only_existing_views(tmp_path):
    write_dataset(tmp_path, dense={"visual": 5})
    config = Config("SLMRec", "tiny", config_dict=quiet_config(tmp_path, ssl_task="FM"))
    train = data_preparation(config, create_dataset(config))[0]
    model = SLMRec(config, train._dataset)
    assert len(model.fac_id_heads) == 1
    for _ in range(30):
        assert set(model.draw_masked_views()) == {0, 1}


def test_scores_and_cache(tmp_path):
    model, train, _ = build(tmp_path)
    data = batch(train)
    model.eval()
    with torch.no_grad():
        user_e, item_e, _ = model.forward()
        scores = model.full_sort_predict(data).view(len(data), -1)
        torch.testing.assert_close(scores, user_e[data["user_id"]] @ item_e.T)
        torch.testing.assert_close(
            model.predict(data), (user_e[data["user_id"]] * item_e[data["item_id"]]).sum(1)
        )
    assert model.restore_user_e is not None
    model.train()
    model.calculate_loss(data)
    assert model.restore_user_e is None and model.restore_item_e is None


def test_cosine_scoring(tmp_path):
    model, train, _ = build(tmp_path, score_type="cosine")
    data = batch(train)
    with torch.no_grad():
        user_e, item_e, _ = model.forward()
        expected = F.normalize(user_e[data["user_id"]], dim=1) @ F.normalize(item_e, dim=1).T
        torch.testing.assert_close(model.full_sort_predict(data).view(len(data), -1), expected)


@pytest.mark.parametrize(
    "key,value,accepted",
    [
        ("ssl_task", "XYZ", "FAC, FD, FM, FD+FM, none"),
        ("fusion", "sum", "concat, mean"),
        ("score_type", "l2", "dot, cosine"),
    ],
)
def test_unknown_choices_list_accepted_values(tmp_path, key, value, accepted):
    message = f"`{key}` is {value!r}; accepted values: {accepted}"
    with pytest.raises(ValueError, match=re.escape(message)):
        build(tmp_path, **{key: value})


def test_every_learned_tensor_is_trained(tmp_path):
    model, train, _ = build(tmp_path, words=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for data in train:
        optimizer.zero_grad()
        model.calculate_loss(data).backward()
        optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []
    assert "word_bags.textual.weight" in before
