"""Synthetic sequence tasks that isolate one ability of a model.

The copy task: read a random string of digits, then write it back. A model that
must squeeze the whole input into a fixed-size state (an RNN encoder) fails as
the string grows; chapter 3 runs the same task with attention.
"""

from __future__ import annotations

import torch

N_DIGITS = 10
START = N_DIGITS  # the start-of-output token
COPY_VOCAB = N_DIGITS + 1


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
