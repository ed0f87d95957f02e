"""The decoder-only copy task: sequence layout, ignored targets, padding."""

import pytest
import torch

from lmkit.losses import IGNORE_INDEX
from lmkit.tasks import PAD, START, copy_lm_batch, copy_lm_prompt


@pytest.mark.parametrize("pad_to", [None, 7])
def test_copy_lm_batch_layout(pad_to):
    x, y = copy_lm_batch(5, 4, torch.Generator().manual_seed(0), pad_to=pad_to)
    P = pad_to or 4
    assert x.shape == y.shape == (5, P + 4)
    src = x[:, :4]
    assert (x[:, 4:P] == PAD).all() and (x[:, P] == START).all()
    assert (x[:, P + 1 :] == src[:, :-1]).all()  # the copy so far, teacher-forced
    assert (y[:, :P] == IGNORE_INDEX).all()  # nothing to predict before START
    assert (y[:, P:] == src).all()  # after START: the source, digit by digit
    assert torch.equal(copy_lm_prompt(src, pad_to), x[:, : P + 1])


def test_copy_lm_batch_is_deterministic_and_checks_padding():
    a = copy_lm_batch(3, 5, torch.Generator().manual_seed(1), pad_to=6)
    b = copy_lm_batch(3, 5, torch.Generator().manual_seed(1), pad_to=6)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    with pytest.raises(ValueError, match="pad_to"):
        copy_lm_batch(3, 5, pad_to=4)
