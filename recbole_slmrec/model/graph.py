"""The user-item graph: its normalised adjacency and LightGCN-style propagation."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

ADJ_TYPES = ("pre", "mean")


def normalized_adjacency(
    inter: sp.coo_matrix, n_users: int, n_items: int, adj_type: str = "pre"
) -> sp.csr_matrix:
    """The bipartite adjacency of the interactions, normalised.

    Nodes ``0 .. n_users-1`` are users and ``n_users .. n_users+n_items-1`` items. Duplicate
    interactions count once. Nodes of degree 0 keep zero rows. No self-loops are added.

    Args:
        inter: ``n_users x n_items`` interactions (the training split only).
        n_users: number of users, padding included.
        n_items: number of items, padding included.
        adj_type: ``pre`` for ``D^-1/2 A D^-1/2`` (symmetric), ``mean`` for ``D^-1 A``.

    Returns:
        The ``(n_users + n_items)`` square normalised adjacency, float32 CSR.
    """
    if adj_type not in ADJ_TYPES:
        raise ValueError(f"adj_type {adj_type!r} is not supported; expected one of {ADJ_TYPES}")
    inter = sp.coo_matrix(inter, shape=(n_users, n_items))
    binary = sp.csr_matrix(
        (np.ones(inter.nnz, dtype=np.float32), (inter.row, inter.col)), shape=(n_users, n_items)
    )
    binary.data[:] = 1.0
    adj = sp.bmat([[None, binary], [binary.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        if adj_type == "pre":
            scale = np.where(degree > 0, degree**-0.5, 0.0).astype(np.float32)
            adj = sp.diags(scale) @ adj @ sp.diags(scale)
        else:
            scale = np.where(degree > 0, 1.0 / degree, 0.0).astype(np.float32)
            adj = sp.diags(scale) @ adj
    return sp.csr_matrix(adj, dtype=np.float32)


def to_torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (float32)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    with warnings.catch_warnings():
        # torch labels its CSR support beta; the products used here are covered by the tests
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``: the gradient ``A^T G`` is ``A @ G``."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(adj)
        return torch.sparse.mm(adj, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (adj,) = ctx.saved_tensors
        return None, torch.sparse.mm(adj, grad)


def spmm(adj: torch.Tensor, dense: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """Sparse-dense product, using the transpose-free backward when ``adj`` is symmetric."""
    if symmetric:
        return _SymmetricSpMM.apply(adj, dense)
    return torch.sparse.mm(adj, dense)


def lightgcn_propagate(
    adj: torch.Tensor,
    ego: torch.Tensor,
    n_layers: int,
    symmetric: bool = True,
    dropout: float = 0.0,
) -> torch.Tensor:
    """LightGCN propagation with the mean readout over layers ``0 .. n_layers``.

    Several views can be propagated at once by stacking them side by side in the columns of
    ``ego``: the product is column-wise, so the result is the same as one pass per view.

    Args:
        adj: ``N x N`` normalised adjacency (sparse).
        ego: ``N x D`` layer-0 embeddings.
        n_layers: number of propagation layers ``L``.
        symmetric: whether ``adj`` is symmetric (``adj_type`` pre).
        dropout: dropout applied to each layer's output before it is read out and propagated
            further (SLMRec's feature dropout); 0 disables it.

    Returns:
        ``N x D`` mean of ``ego, A ego, ..., A^L ego``.
    """
    total = ego
    layer = ego
    for _ in range(n_layers):
        layer = spmm(adj, layer, symmetric)
        if dropout > 0:
            layer = torch.nn.functional.dropout(layer, p=dropout, training=True)
        total = total + layer
    return total / (n_layers + 1)
