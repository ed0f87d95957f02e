"""Sampling text from a language model: greedy, temperature, top-k, top-p, with a KV cache.

Taught in chapter 4 (sampling and the KV cache); exercise 04 writes its own
`next_token_probs` and `generate_greedy`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from lmkit.transformer import GPT


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Turn logits (B, V) into sampling probabilities (B, V).

    ``temperature`` divides the logits before the softmax (< 1 sharpens, > 1 flattens);
    ``top_k`` keeps the k most likely tokens; ``top_p`` keeps the smallest set of most
    likely tokens whose probability adds up to at least p (the nucleus).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling (use greedy decoding for 0), got {temperature}")
    V = logits.shape[-1]
    if top_k is not None and not 1 <= top_k <= V:
        raise ValueError(f"top_k must be between 1 and the vocabulary size {V}, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep a token if the tokens ranked above it hold less than top_p
        keep_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token from logits (B, V): the most likely one at ``temperature=0``
    (greedy), otherwise a draw from ``next_token_probs``. Returns ids (B, 1)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(next_token_probs(logits, temperature, top_k, top_p), 1, generator=generator)


@torch.no_grad()
def generate(
    model: GPT,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    stop_id: int | None = None,
) -> list[int]:
    """Continue a prompt by ``max_new_tokens`` tokens; returns prompt + new ids.
    With ``stop_id`` generation ends early, after the first ``stop_id`` it produces
    (an end-of-answer token, chapter 5), which is kept.

    ``temperature=0`` is greedy decoding (always the most likely token). With
    ``use_cache`` the model reads the prompt once and then one token per step,
    reusing the cached keys and values; without it, every step re-reads the whole
    sequence (the last ``context`` tokens). Both give the same tokens.
    """
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise ValueError("the prompt must hold at least one token")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def pick(logits: torch.Tensor) -> torch.Tensor:
        return sample_next(logits, temperature, top_k, top_p, generator)

    return _decode(model, ids[None], max_new_tokens, pick, use_cache, stop_id)[0].tolist()


@torch.no_grad()
def greedy_batch(model: GPT, prompts: torch.Tensor, max_new_tokens: int, use_cache: bool = True) -> torch.Tensor:
    """Greedy decoding of a batch of prompts of the same length: ``prompts`` (B, T) ->
    prompts + new tokens (B, T + max_new_tokens), each new token the most likely one.

    Row b is what ``generate(model, prompts[b], max_new_tokens, temperature=0)`` gives,
    computed for the whole batch at once; ``use_cache`` as in ``generate``.
    """
    if prompts.ndim != 2 or prompts.shape[1] == 0:
        raise ValueError(f"prompts must have shape (B, T) with T >= 1, got {tuple(prompts.shape)}")
    return _decode(model, prompts.long(), max_new_tokens, lambda logits: logits.argmax(dim=-1, keepdim=True), use_cache)


def _decode(
    model: GPT,
    prompts: torch.Tensor,
    max_new_tokens: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
    use_cache: bool,
    stop_id: int | None = None,
) -> torch.Tensor:
    """The one decoding loop: extend ``prompts`` (B, T) by ``max_new_tokens`` tokens, each
    ``pick(logits (B, V)) -> ids (B, 1)``; returns (B, T + max_new_tokens), or fewer new
    tokens once every row has produced ``stop_id``."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    context = model.config.context
    bounded = model.config.positions in ("learned", "sinusoidal")
    if use_cache and bounded and prompts.shape[1] + max_new_tokens > context:
        raise ValueError(
            f"prompt + new tokens ({prompts.shape[1] + max_new_tokens}) exceed the model's context of {context} "
            "(use_cache=False slides a window)"
        )
    was_training = model.training
    model.eval()
    seq = prompts
    cache = model.new_cache() if use_cache else None
    step_input = seq  # the whole prompt first
    try:
        for _ in range(max_new_tokens):
            if cache is None:
                step_input = seq[:, -context:] if bounded else seq
            nxt = pick(model(step_input, cache=cache)[0][:, -1])  # (B, 1)
            seq = torch.cat([seq, nxt], dim=1)
            step_input = nxt
            if stop_id is not None and (seq[:, prompts.shape[1] :] == stop_id).any(dim=1).all():
                break
    finally:
        model.train(was_training)
    return seq


def time_generation(model: GPT, prompt_ids: Sequence[int], lengths: Sequence[int], repeats: int = 3) -> dict[str, list[float]]:
    """Median seconds to generate each of ``lengths`` new tokens greedily, with the KV cache
    (``"with KV cache"``) and without (``"without"``), over ``repeats`` rounds after one
    warm-up of each; every round times every length and setting, so a slow spell of a shared
    machine touches them all alike. Raises if the two ever give different tokens."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    settings = {"with KV cache": True, "without": False}
    for use_cache in settings.values():
        generate(model, prompt_ids, min(lengths), temperature=0, use_cache=use_cache)  # warm-up
    runs: dict[str, list[list[float]]] = {name: [[] for _ in lengths] for name in settings}
    for _ in range(repeats):
        for i, n in enumerate(lengths):
            outs = {}
            for name, use_cache in settings.items():
                start = time.perf_counter()
                outs[name] = generate(model, prompt_ids, n, temperature=0, use_cache=use_cache)
                runs[name][i].append(time.perf_counter() - start)
            if outs["with KV cache"] != outs["without"]:
                raise RuntimeError(f"cached and uncached generation differ at {n} new tokens")
    return {name: [statistics.median(r) for r in per_length] for name, per_length in runs.items()}
