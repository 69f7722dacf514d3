"""Contrastive losses shared by the plugin's models."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE: row ``b`` of ``anchor`` against every row of ``positive``.

    Args:
        anchor: ``B x d``.
        positive: ``B x d``; row ``b`` is the positive of anchor ``b``, the other rows are its
            negatives.
        temperature: the logits are ``anchor @ positive.T / temperature``.

    Returns:
        The mean cross-entropy with the diagonal as targets (a scalar).
    """
    logits = (anchor / temperature) @ positive.T
    targets = torch.arange(anchor.shape[0], device=anchor.device)
    return F.cross_entropy(logits, targets)
