"""The next-token loss, and the one convention for positions that carry no loss.

Taught in chapter 2 (recurrent language models) and used by every model after it.
Convention: a model's ``forward(idx, targets)`` takes targets that are already
shifted (``targets[b, t]`` is the token after ``idx[b, t]``, as ``get_batch``
returns them); ``next_token_loss`` takes one tensor of whole sequences and does
the shift itself. A target equal to ``IGNORE_INDEX`` (padding, a prompt) is left
out of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # PyTorch's default ignore_index for cross_entropy


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean cross-entropy of predicting ``tokens[:, t + 1]`` from ``logits[:, t]``.

    ``logits`` (B, T, V) are a model's outputs on ``tokens`` (B, T); targets equal to
    ``ignore_index`` are skipped. Returns a scalar tensor (nats per scored token).
    """
    if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"need logits (B, T, V) and tokens (B, T), got {tuple(logits.shape)} and {tuple(tokens.shape)}")
    if tokens.shape[1] < 2:
        raise ValueError("sequences need at least two tokens to predict a next one")
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=ignore_index)
