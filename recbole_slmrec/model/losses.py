"""Contrastive losses shared by the plugin's models."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    temperature: float,
    exclude: torch.Tensor | None = None,
    column_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch InfoNCE: row ``b`` of ``anchor`` against every row of ``positive``.

    Args:
        anchor: ``B x d``.
        positive: ``B x d``; row ``b`` is the positive of anchor ``b``, the other rows are its
            negatives.
        temperature: the logits are ``anchor @ positive.T / temperature``.
        exclude: optional ``B x B`` boolean mask of logits to leave out of the softmax (false
            negatives); its diagonal must be ``False``.
        column_offset: optional length-``B`` vector added to every logit of column ``b``
            (``-log`` sampling probabilities for the logQ correction).

    Returns:
        The mean cross-entropy with the diagonal as targets (a scalar).
    """
    logits = (anchor / temperature) @ positive.T
    if column_offset is not None:
        logits = logits + column_offset.unsqueeze(0)
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    targets = torch.arange(anchor.shape[0], device=anchor.device)
    return F.cross_entropy(logits, targets)


def pair_index(
    rows: torch.Tensor, cols: torch.Tensor, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A set of (row, column) pairs in compressed sparse row form, for :func:`pairs_contain`.

    Returns:
        ``(indptr, indices)``: row ``r``'s columns are ``indices[indptr[r]:indptr[r + 1]]``,
        sorted and without repeats. Memory is linear in the number of pairs.
    """
    rows, cols = rows.long(), cols.long()
    if rows.numel():
        width = int(cols.max()) + 1
        unique = torch.unique(rows * width + cols)  # sorted by row, then column
        rows, cols = unique // width, unique % width
    counts = torch.bincount(rows, minlength=n_rows)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, cols


def pairs_contain(
    index: tuple[torch.Tensor, torch.Tensor],
    n_cols: int,
    rows: torch.Tensor,
    cols: torch.Tensor,
    max_cells: int = 1 << 25,
) -> torch.Tensor:
    """``out[a, b]``: whether ``(rows[a], cols[b])`` is in ``index`` (from :func:`pair_index`).

    Each chunk of query rows is spread into a ``chunk x n_cols`` boolean map, then the query
    columns are gathered from it, so memory stays under about ``max_cells`` bytes.

    Returns:
        A ``len(rows) x len(cols)`` boolean tensor.
    """
    indptr, indices = index
    out = torch.empty(len(rows), len(cols), dtype=torch.bool, device=rows.device)
    chunk = max(1, max_cells // max(1, n_cols))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk].long()
        first, last = indptr[part], indptr[part + 1]
        degree = last - first
        owner = torch.repeat_interleave(torch.arange(len(part), device=rows.device), degree)
        offset = torch.arange(owner.numel(), device=rows.device) - torch.repeat_interleave(
            torch.cumsum(degree, 0) - degree, degree
        )
        seen = torch.zeros(len(part), n_cols, dtype=torch.bool, device=rows.device)
        seen[owner, indices[first[owner] + offset]] = True
        out[start : start + len(part)] = seen[:, cols.long()]
    return out


def accidental_hits(
    index: tuple[torch.Tensor, torch.Tensor],
    n_items: int,
    users: torch.Tensor,
    items: torch.Tensor,
) -> torch.Tensor:
    """The in-batch negatives that are known positives.

    ``out[a, b]`` (``b != a``) is whether user ``users[a]`` has item ``items[b]`` among the
    interactions in ``index`` (:func:`pair_index` of users and items); this covers a repeated
    item and a second item of the same user. The diagonal, the targets, is ``False``.
    """
    hits = pairs_contain(index, n_items, users, items)
    hits.fill_diagonal_(False)
    return hits
