"""Synthetic sequence tasks that isolate one ability of a model.

The copy task: read a random string of digits, then write it back. A model that
must squeeze the whole input into a fixed-size state (an RNN encoder) fails as
the string grows; chapter 3 runs the same task with attention.
"""

from __future__ import annotations

import torch

from lmkit.losses import IGNORE_INDEX

N_DIGITS = 10
START = N_DIGITS  # the start-of-output token
COPY_VOCAB = N_DIGITS + 1
PAD = N_DIGITS + 1  # filler after a short source (decoder-only copy task)
COPY_LM_VOCAB = N_DIGITS + 2


def copy_batch(batch_size: int, length: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of the copy task.

    Returns ``(src, tgt_in, tgt_out)``, int64 of shapes (B, L), (B, L), (B, L):
    ``src`` random digits, ``tgt_out == src`` (copy it), and ``tgt_in`` the
    target shifted right behind ``START`` (what the decoder has seen so far).
    """
    if batch_size < 1 or length < 1:
        raise ValueError(f"batch_size and length must be positive, got {batch_size} and {length}")
    src = torch.randint(N_DIGITS, (batch_size, length), generator=generator)
    tgt_in = torch.cat([torch.full((batch_size, 1), START), src[:, :-1]], dim=1)
    return src, tgt_in, src.clone()


def copy_lm_batch(
    batch_size: int, length: int, generator: torch.Generator | None = None, pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy task for a decoder-only model: one sequence ``digits [PAD...] START digits``.

    The source is padded to ``pad_to`` digits (default: no padding), so that the
    copy of digit j always sits the same distance after the digit itself.
    Returns ``(x, y)``, int64 of shape (B, P + L), P = ``pad_to or length``: ``x``
    the sequence without its last token and ``y`` the next tokens, with the
    targets before the copy set to ``IGNORE_INDEX``: only
    writing the copy is scored.
    """
    pad_to = length if pad_to is None else pad_to
    if pad_to < length:
        raise ValueError(f"pad_to ({pad_to}) must be at least length ({length})")
    src, _, _ = copy_batch(batch_size, length, generator)
    pad = torch.full((batch_size, pad_to - length), PAD)
    seq = torch.cat([src, pad, torch.full((batch_size, 1), START), src], dim=1)  # (B, P + 1 + L)
    x, y = seq[:, :-1], seq[:, 1:].clone()
    y[:, :pad_to] = IGNORE_INDEX
    return x, y


def copy_lm_prompt(src: torch.Tensor, pad_to: int | None = None) -> torch.Tensor:
    """The prompt ``digits [PAD...] START`` for a decoder-only model to continue with the copy."""
    B, L = src.shape
    pad_to = L if pad_to is None else pad_to
    return torch.cat([src, torch.full((B, pad_to - L), PAD), torch.full((B, 1), START)], dim=1)
