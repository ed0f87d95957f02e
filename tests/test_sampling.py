"""lmkit.generate.sample_next, the one sampling step that lmkit.generate.generate and
RecurrentLM.generate share, checked against the loops they had before it."""

from __future__ import annotations

import pytest
import torch

from lmkit.generate import generate, next_token_probs, sample_next
from lmkit.rnn import RecurrentLM, RNNConfig
from lmkit.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def test_temperature_zero_is_argmax_for_each_row():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    assert sample_next(logits, 0.0).tolist() == [[1], [0]]


def test_sampling_draws_from_next_token_probs_with_the_generator():
    logits = torch.randn(3, 7)
    for kwargs in ({"temperature": 0.7}, {"temperature": 1.3, "top_k": 3}, {"temperature": 1.0, "top_p": 0.6}):
        got = sample_next(logits, generator=torch.Generator().manual_seed(4), **kwargs)
        probs = next_token_probs(logits, kwargs["temperature"], kwargs.get("top_k"), kwargs.get("top_p"))
        assert got.shape == (3, 1) and got.dtype == torch.long
        assert torch.equal(got, torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(4)))
        assert (probs.gather(1, got) > 0).all()  # never a token that top-k / top-p removed


def test_negative_temperature_is_an_error():
    with pytest.raises(ValueError, match="temperature"):
        sample_next(torch.zeros(1, 4), -1.0)


def old_generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None):
    """lmkit.generate.generate's loop before sample_next (without the cache)."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    out = list(prompt_ids)
    model.eval()
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(torch.tensor([out[-model.config.context :]]))[0][:, -1]
            if temperature == 0:
                nxt = int(logits.argmax(dim=-1))
            else:
                nxt = int(torch.multinomial(next_token_probs(logits, temperature, top_k, top_p), 1, generator=generator))
            out.append(nxt)
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0},
        {"temperature": 0.8, "seed": 0},
        {"temperature": 1.1, "top_k": 4, "seed": 3},
        {"temperature": 0.9, "top_p": 0.7, "seed": 5},
    ],
    ids=repr,
)
def test_generate_gives_the_same_tokens_as_before(kwargs):
    model = GPT(GPTConfig(vocab_size=11, context=24, d_model=16, n_layers=1, n_heads=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    assert generate(model, [1, 2], 30, use_cache=False, **kwargs) == old_generate(model, [1, 2], 30, **kwargs)
    assert generate(model, [1, 2], 20, use_cache=True, **kwargs) == old_generate(model, [1, 2], 20, **kwargs)


def test_recurrent_generate_gives_the_same_tokens_as_before():
    # RecurrentLM.generate's loop before sample_next: softmax(logits / T) and multinomial, argmax at 0.
    model = RecurrentLM(RNNConfig(11, embed_dim=8, hidden_size=16))
    prompt = torch.randint(11, (3, 4))
    for temperature in (0.0, 0.8):
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            out, state = model.rnn(model.embed(prompt))
            h, tokens = out[:, -1], [prompt]
            for _ in range(15):
                logits = model.head(h)
                nxt = (
                    logits.argmax(-1, keepdim=True)
                    if temperature == 0
                    else torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=g)
                )
                tokens.append(nxt)
                state = model.rnn.cell(model.embed(nxt[:, 0]), state)
                h = state[0]
        expected = torch.cat(tokens, dim=1)
        assert torch.equal(model.generate(prompt, 15, temperature=temperature, generator=torch.Generator().manual_seed(2)), expected)
