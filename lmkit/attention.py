"""Attention: every position looks at every (allowed) position.

Taught in chapter 3 (transformers); the GPT of chapter 4 is built from it.
Masks are boolean with ``True`` where attention is allowed (torch's convention for
``scaled_dot_product_attention``) and broadcast over leading dimensions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) bool mask, True on and below the diagonal: position t sees 0..t."""
    if T < 1:
        raise ValueError(f"T must be positive, got {T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) masked) v.

    Args:
        q: (..., T_q, d); k: (..., T_k, d); v: (..., T_k, d_v).
        mask: bool, broadcastable to (..., T_q, T_k); True where attention is allowed.
        return_weights: also return the attention weights (..., T_q, T_k).

    Returns:
        (..., T_q, d_v), and the weights if asked.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length, got {k.shape[-2]} and {v.shape[-2]}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


def activation_bytes(module: nn.Module, x: torch.Tensor, **kwargs) -> int:
    """Bytes of the tensors autograd keeps from ``module(x, **kwargs)`` for the backward pass.

    The module's parameters are left out (they are kept whatever the input), so this is
    the memory that training spends on the activations of one call, the part that grows
    with the length of ``x``. Tensors sharing storage are counted once.
    """
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.detach().requires_grad_(True), **kwargs)
    return sum(kept.values())


def dropout_layer(p: float) -> nn.Module:
    """Dropout, or nothing at all when p is 0 (training-mode dropout with p = 0 still costs time)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


def check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    """A clear error unless ``mask`` is bool and broadcasts to the scores' shape."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = attend), got {mask.dtype}")
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores {tuple(scores_shape)}") from None


def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """(T, d) fixed position encodings of Vaswani et al.: sines on even, cosines on odd dimensions."""
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    pos = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class RoPE(nn.Module):
    """Rotary position embedding: rotate each pair of (q, k) dimensions by an angle
    proportional to the position, so that q_s . k_t depends on the two vectors and
    on the offset s - t, not on s and t themselves.

    ``forward(x (B, H, T, hd), offset=0)`` rotates positions offset .. offset+T-1.
    Pairs are (dimension i, dimension i + hd/2), as in GPT-NeoX and Llama.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
        self.head_dim = head_dim
        self.register_buffer("freq", base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.shape[-2]
        angle = torch.arange(offset, offset + T, dtype=torch.float32, device=x.device)[:, None] * self.freq  # (T, hd/2)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        x1, x2 = x[..., : self.head_dim // 2], x[..., self.head_dim // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class LayerCache:
    """Keys and values of one attention layer for the positions seen so far: (B, H, T_past, hd)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' keys and values; return those of all positions so far."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Self-attention with ``n_heads`` heads of size ``d_model / n_heads``.

    Projections are stored as torch's ``nn.MultiheadAttention`` stores them (one
    ``(3C, C)`` input projection for q, k, v, then an output projection), so
    weights can be copied between the two.

    ``dropout`` drops elements of the output projection (the residual dropout of
    GPT-2), in training mode only; the attention weights themselves are never
    dropped, so they always sum to 1 over the keys.

    With ``rope``, queries and keys are rotated by ``RoPE(head_dim, rope_base)``.
    Set ``keep_weights = True`` to store the attention weights (B, H, T, T_k) of each
    call in ``last_weights`` (e.g. to draw them); it computes them explicitly, as
    ``return_weights`` does, and gives the same outputs.
    """

    def __init__(
        self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, rope: bool = False, rope_base: float = 10000.0
    ) -> None:
        super().__init__()
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout_layer(dropout)
        self.rope = RoPE(self.head_dim, rope_base) if rope else None
        self.keep_weights = False
        self.last_weights: torch.Tensor | None = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, H, T, C/H): head h gets channels h*C/H .. (h+1)*C/H - 1."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, hd) -> (B, T, H*hd), the inverse of split_heads."""
        B, H, T, hd = x.shape
        return x.transpose(1, 2).reshape(B, T, H * hd)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        return_weights: bool = False,
        cache: LayerCache | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, C) -> (B, T, C); with ``return_weights`` also the weights (B, H, T, T_k).

        ``mask`` (bool, True = attend) broadcasts to (B, H, T, T_k); ``causal`` adds the
        causal mask. With a ``cache``, ``x`` holds the positions after the cached ones:
        their keys and values are added to the cache and the queries attend to all of them.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"input must have shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        T = x.shape[1]
        past = 0 if cache is None else cache.length
        q, k, v = (self.split_heads(t) for t in self.qkv(x).split(self.d_model, dim=-1))  # each (B, H, T, hd)
        if self.rope is not None:
            q, k = self.rope(q, offset=past), self.rope(k, offset=past)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, past + T, hd)
        T_k = k.shape[-2]
        explicit = return_weights or self.keep_weights  # the weights are wanted: no fused kernel
        fused_causal = causal and mask is None and past == 0 and not explicit
        if causal and not fused_causal:
            # query i sits at position past + i and may see keys 0 .. past + i
            allowed = torch.arange(T_k, device=x.device)[None, :] <= torch.arange(past, past + T, device=x.device)[:, None]
            mask = allowed if mask is None else mask & allowed
        if explicit:
            out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
            if self.keep_weights:
                self.last_weights = weights.detach()
        else:
            # The same computation as scaled_dot_product_attention above, in torch's fused kernel.
            if mask is not None:
                check_mask(mask, q.shape[:-1] + (T_k,))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=fused_causal)
        out = self.dropout(self.proj(self.merge_heads(out)))  # (B, T, C)
        return (out, weights) if return_weights else out
