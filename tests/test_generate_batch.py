"""Tests for lmkit.generate.greedy_batch: greedy decoding of a batch of prompts at once.

The reference is lmkit's own single-sequence ``generate(..., temperature=0)`` row by
row (itself tested against the model's argmax in test_generate.py), and a loop
written out here that re-reads the whole sequence at every step.
"""

from __future__ import annotations

import pytest
import torch

from lmkit.generate import generate, greedy_batch
from lmkit.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def model(positions: str = "rope", context: int = 16) -> GPT:
    return GPT(GPTConfig(vocab_size=13, context=context, d_model=32, n_layers=2, n_heads=4, positions=positions)).eval()


def argmax_loop(m: GPT, prompts: torch.Tensor, n: int) -> torch.Tensor:
    seq = prompts
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, m(seq)[0][:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_batch_is_generate_row_by_row(positions, use_cache):
    m = model(positions)
    prompts = torch.randint(13, (5, 4))
    out = greedy_batch(m, prompts, 8, use_cache=use_cache)
    assert out.shape == (5, 12) and torch.equal(out[:, :4], prompts)
    for row, prompt in zip(out, prompts):
        assert row.tolist() == generate(m, prompt, 8, temperature=0)
    assert torch.equal(out, argmax_loop(m, prompts, 8))


def test_greedy_batch_without_cache_slides_a_window_past_a_learned_context():
    m = model("learned", context=6)
    prompts = torch.randint(13, (3, 4))
    out = greedy_batch(m, prompts, 5, use_cache=False)
    for row, prompt in zip(out, prompts):
        assert row.tolist() == generate(m, prompt, 5, temperature=0, use_cache=False)
    with pytest.raises(ValueError, match="context"):
        greedy_batch(m, prompts, 5)


def test_greedy_batch_keeps_the_training_mode_and_rejects_bad_input():
    m = model().train()
    greedy_batch(m, torch.zeros(2, 3, dtype=torch.long), 2)
    assert m.training
    with pytest.raises(ValueError, match="prompts"):
        greedy_batch(m, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_batch(m, torch.zeros(1, 3, dtype=torch.long), -1)
    assert torch.equal(greedy_batch(m, torch.ones(2, 3, dtype=torch.long), 0), torch.ones(2, 3, dtype=torch.long))
