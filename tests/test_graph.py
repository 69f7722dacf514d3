"""The normalised adjacency and the propagation, against dense computations by hand."""

import numpy as np
import scipy.sparse as sp
import torch

from recbole_slmrec.model.graph import (
    lightgcn_propagate,
    normalized_adjacency,
    spmm,
    to_torch_csr,
)

# 3 users (user 0 the padding user, no edges) and 3 items (item 0 padding, no edges):
# user 1 - items 1, 2; user 2 - item 1; plus a duplicate of (1, 1) that must count once.
ROWS = np.array([1, 1, 2, 1])
COLS = np.array([1, 2, 1, 1])


def _inter():
    return sp.coo_matrix((np.ones(4, dtype=np.float32), (ROWS, COLS)), shape=(3, 3))


def test_symmetric_normalisation_by_hand():
    adj = normalized_adjacency(_inter(), 3, 3, "pre").toarray()
    # nodes: u0 u1 u2 i0 i1 i2 ; degrees: u1 = 2, u2 = 1, i1 = 2, i2 = 1
    expected = np.zeros((6, 6))
    expected[1, 4] = expected[4, 1] = 1 / np.sqrt(2 * 2)
    expected[1, 5] = expected[5, 1] = 1 / np.sqrt(2 * 1)
    expected[2, 4] = expected[4, 2] = 1 / np.sqrt(1 * 2)
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    assert not adj[0].any() and not adj[3].any(), "degree-0 nodes keep zero rows"
    assert np.allclose(np.diag(adj), 0), "no self-loops"


def test_mean_normalisation_by_hand():
    adj = normalized_adjacency(_inter(), 3, 3, "mean").toarray()
    np.testing.assert_allclose(adj[1], [0, 0, 0, 0, 0.5, 0.5])
    np.testing.assert_allclose(adj[4], [0, 0.5, 0.5, 0, 0, 0])
    np.testing.assert_allclose(adj[5], [0, 1, 0, 0, 0, 0])


def test_stacked_views_equal_per_view_propagation():
    adj_sp = normalized_adjacency(_inter(), 3, 3, "pre")
    adj = to_torch_csr(adj_sp)
    dense = torch.tensor(adj_sp.toarray())
    torch.manual_seed(0)
    views = [torch.randn(6, 4) for _ in range(3)]
    stacked = lightgcn_propagate(adj, torch.cat(views, dim=1), n_layers=3)
    for k, view in enumerate(views):
        layers = [view]
        for _ in range(3):
            layers.append(dense @ layers[-1])
        expected = torch.stack(layers).mean(dim=0)
        torch.testing.assert_close(stacked[:, 4 * k : 4 * (k + 1)], expected)


def test_symmetric_backward_equals_dense_gradient():
    adj_sp = normalized_adjacency(_inter(), 3, 3, "pre")
    adj = to_torch_csr(adj_sp)
    dense = torch.tensor(adj_sp.toarray())
    x = torch.randn(6, 5, requires_grad=True)
    weight = torch.randn(6, 5)
    (spmm(adj, spmm(adj, x, True), True) * weight).sum().backward()
    x_dense = x.detach().clone().requires_grad_(True)
    (dense @ (dense @ x_dense) * weight).sum().backward()
    torch.testing.assert_close(x.grad, x_dense.grad)


def test_dropout_changes_layers_and_zero_dropout_does_not():
    adj = to_torch_csr(normalized_adjacency(_inter(), 3, 3, "pre"))
    ego = torch.randn(6, 8)
    base = lightgcn_propagate(adj, ego, 2)
    torch.testing.assert_close(lightgcn_propagate(adj, ego, 2, dropout=0.0), base)
    torch.manual_seed(1)
    assert not torch.allclose(lightgcn_propagate(adj, ego, 2, dropout=0.5), base)
