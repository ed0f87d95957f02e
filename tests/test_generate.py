"""Sampling and the KV cache, against straightforward references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmkit.generate import generate, next_token_probs, time_generation
from lmkit.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def tiny(positions: str = "learned", **kw) -> GPT:
    model = GPT(GPTConfig(vocab_size=11, context=24, d_model=16, n_layers=2, n_heads=2, positions=positions, **kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # strong preferences, so a wrong position changes the tokens
    return model


def test_temperature_divides_logits_before_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    for t in (0.5, 1.0, 3.0):
        torch.testing.assert_close(next_token_probs(logits, temperature=t), F.softmax(logits / t, dim=-1))


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_top_k_keeps_exactly_k_tokens(k):
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])
    probs = next_token_probs(logits, top_k=k)
    kept = probs[0] > 0
    assert int(kept.sum()) == k
    assert set(kept.nonzero().flatten().tolist()) == set(logits[0].topk(k).indices.tolist())
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))


def test_top_p_keeps_the_smallest_nucleus():
    probs_in = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs_in.log()
    # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: the nucleus is the first two tokens
    torch.testing.assert_close(next_token_probs(logits, top_p=0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    torch.testing.assert_close(next_token_probs(logits, top_p=1.0), probs_in)
    assert int((next_token_probs(logits, top_p=0.01) > 0).sum()) == 1  # always at least the top token


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_k": 0}, {"top_k": 6}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_sampling_settings_raise(kwargs):
    with pytest.raises(ValueError):
        next_token_probs(torch.zeros(1, 5), **kwargs)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
def test_cache_gives_the_same_tokens_as_recomputing(positions):
    model = tiny(positions)
    prompt = [1, 2, 3, 4]
    for kwargs in ({"temperature": 0}, {"temperature": 0.9, "top_k": 5, "seed": 3}, {"temperature": 1.2, "top_p": 0.8, "seed": 4}):
        assert generate(model, prompt, 20, use_cache=True, **kwargs) == generate(model, prompt, 20, use_cache=False, **kwargs)


def test_cached_logits_equal_full_forward():
    model = tiny("rope")
    idx = torch.randint(11, (2, 12))
    full = model(idx)[0]
    cache = model.new_cache()
    parts = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t : t + 1], cache=cache)[0] for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 12  # every position entered exactly once


def test_greedy_is_argmax_and_seeded_sampling_is_reproducible():
    model = tiny()
    out = generate(model, [5], 6, temperature=0)
    seq = [5]
    for _ in range(6):
        seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    assert out == seq
    assert generate(model, [5], 10, seed=7) == generate(model, [5], 10, seed=7)


def test_generate_errors_and_context():
    model = tiny()
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [], 3)
    with pytest.raises(ValueError, match="context"):
        generate(model, [1] * 20, 10, use_cache=True)
    assert len(generate(model, [1] * 20, 10, use_cache=False, temperature=0)) == 30  # slides a window instead
    model.train()
    generate(model, [1], 2)
    assert model.training  # mode restored


@pytest.mark.parametrize("use_cache", [True, False])
def test_stop_id_ends_generation_after_its_first_occurrence(use_cache):
    model = tiny()
    full = generate(model, [1, 2], 15, temperature=0)
    new = full[2:]
    stop = new[3]  # a token the model produces, first at some step k <= 3
    k = new.index(stop)
    assert generate(model, [1, 2], 15, temperature=0, stop_id=stop, use_cache=use_cache) == full[: 2 + k + 1]
    absent = next(t for t in range(11) if t not in new)
    assert generate(model, [1, 2], 15, temperature=0, stop_id=absent, use_cache=use_cache) == full


def test_greedy_batch_stops_only_when_every_row_has_stopped():
    from lmkit.generate import _decode

    model = tiny()
    prompts = torch.tensor([[1, 2], [3, 4]])
    full = _decode(model, prompts, 10, lambda logits: logits.argmax(-1, keepdim=True), use_cache=True)
    stop = int(full[0, 2])  # row 0 stops at once; row 1 goes on until it produces it too, or the budget ends
    out = _decode(model, prompts, 10, lambda logits: logits.argmax(-1, keepdim=True), use_cache=True, stop_id=stop)
    row1 = full[1, 2:].tolist()
    expected_len = 2 + (row1.index(stop) + 1 if stop in row1 else 10)
    assert out.shape == (2, expected_len) and torch.equal(out, full[:, :expected_len])


def test_time_generation_times_every_length_both_ways_and_checks_the_tokens(monkeypatch):
    model = tiny("rope")
    calls = []
    real = generate

    def counting(*args, **kwargs):
        calls.append((args[2], kwargs["use_cache"]))
        return real(*args, **kwargs)

    monkeypatch.setattr("lmkit.generate.generate", counting)
    timing = time_generation(model, [1, 2], [3, 5], repeats=2)
    assert set(timing) == {"with KV cache", "without"} and all(len(t) == 2 and min(t) > 0 for t in timing.values())
    assert len(calls) == 2 + 2 * 2 * 2  # a warm-up each way, then every length both ways in each round
    with pytest.raises(ValueError, match="repeats"):
        time_generation(model, [1], [3], repeats=0)
    monkeypatch.setattr("lmkit.generate.generate", lambda m, p, n, temperature, use_cache: [int(use_cache)] * n)
    with pytest.raises(RuntimeError, match="differ"):
        time_generation(model, [1], [3], repeats=1)
