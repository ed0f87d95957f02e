"""Transformer blocks and a GPT built from them, configured by one dataclass.

Taught in chapter 3 (the block) and chapter 4 (the GPT, GPT-2 vs modern blocks).

"GPT-2 style" (LayerNorm, GELU MLP, learned positions) and "modern" (RMSNorm,
SwiGLU, rotary positions) are two configurations of the same classes. Chapter 3's
block ladder switches parts of the block off (``norm="none"``, ``mlp="none"``,
``residual=False``) to measure what each part is worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.attention import LayerCache, MultiHeadAttention, dropout_layer, sinusoidal_positions
from lmkit.losses import IGNORE_INDEX
from lmkit.train import num_parameters


class LayerNorm(nn.Module):
    """Normalise each vector to zero mean and unit variance, then scale and shift:
    ``(x - mean) / sqrt(var + eps) * weight + bias`` (computed by torch's fused kernel)."""

    def __init__(self, d: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """Scale each vector to unit root-mean-square (no centring, no bias), then by a gain:
    ``x / sqrt(mean(x**2) + eps) * weight``."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class MLP(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear."""

    def __init__(self, d: int, hidden: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(d, hidden, bias=bias)
        self.proj = nn.Linear(hidden, d, bias=bias)
        self.dropout = dropout_layer(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class SwiGLU(nn.Module):
    """Gated feed-forward: (SiLU(x W_gate) * x W_up) W_down."""

    def __init__(self, d: int, hidden: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Linear(d, hidden, bias=bias)
        self.up = nn.Linear(d, hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)
        self.dropout = dropout_layer(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


@dataclass
class GPTConfig:
    vocab_size: int = 65
    context: int = 64  # the longest sequence the model accepts (learned positions have this many rows)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_hidden: int | None = None  # default: 4 * d_model (GELU) or 8/3 * d_model rounded (SwiGLU)
    norm: Literal["layernorm", "rmsnorm", "none"] = "layernorm"  # "none": no norms at all (chapter 3's ladder)
    mlp: Literal["gelu", "swiglu", "none"] = "gelu"  # "none": attention-only blocks
    positions: Literal["learned", "sinusoidal", "rope", "none"] = "learned"
    dropout: float = 0.0  # on the embeddings and on each block's attention and MLP outputs (not on attention weights)
    bias: bool = True
    tie_weights: bool = True  # the output layer reuses the token embedding matrix
    norm_eps: float | None = None  # added to the variance in the norms; default: 1e-5 (LayerNorm) or 1e-6 (RMSNorm)
    rope_base: float = 10000.0  # RoPE's angle for dimension pair i is position * rope_base ** (-2i / head_dim)
    residual: bool = True  # False: each sub-layer replaces x instead of adding to it (chapter 3's ladder)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        choices = {
            "norm": ("layernorm", "rmsnorm", "none"),
            "mlp": ("gelu", "swiglu", "none"),
            "positions": ("learned", "sinusoidal", "rope", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.mlp_hidden is not None and self.mlp_hidden < 1:
            raise ValueError(f"mlp_hidden must be positive, got {self.mlp_hidden}")
        if self.mlp_hidden is None and self.mlp != "none":
            self.mlp_hidden = 4 * self.d_model if self.mlp == "gelu" else 32 * ((8 * self.d_model // 3 + 31) // 32)
        if self.norm_eps is None:
            self.norm_eps = 1e-5 if self.norm == "layernorm" else 1e-6
        if not self.norm_eps > 0 or not self.rope_base > 0:
            raise ValueError(f"norm_eps and rope_base must be positive, got {self.norm_eps} and {self.rope_base}")

    @classmethod
    def gpt2(cls, **kwargs) -> GPTConfig:
        return cls(**{"norm": "layernorm", "mlp": "gelu", "positions": "learned", **kwargs})

    @classmethod
    def modern(cls, **kwargs) -> GPTConfig:
        return cls(**{"norm": "rmsnorm", "mlp": "swiglu", "positions": "rope", "bias": False, **kwargs})


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "layernorm":
        return LayerNorm(config.d_model, config.norm_eps, config.bias)
    if config.norm == "none":
        return nn.Identity()
    return RMSNorm(config.d_model, config.norm_eps)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    The config can switch parts off: ``norm="none"`` drops the norms, ``mlp="none"``
    the MLP sub-layer (``self.mlp`` is None), and ``residual=False`` makes each
    sub-layer replace x (x = attn(norm(x))) instead of adding to it.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = MultiHeadAttention(
            config.d_model, config.n_heads, config.dropout, config.bias, rope=config.positions == "rope", rope_base=config.rope_base
        )
        self.norm2 = make_norm(config) if config.mlp != "none" else None
        mlp = {"gelu": MLP, "swiglu": SwiGLU, "none": None}[config.mlp]
        self.mlp = None if mlp is None else mlp(config.d_model, config.mlp_hidden, config.bias, config.dropout)
        self.residual = config.residual

    def forward(self, x: torch.Tensor, causal: bool = True, cache: LayerCache | None = None) -> torch.Tensor:
        a = self.attn(self.norm1(x), causal=causal, cache=cache)
        x = x + a if self.residual else a
        if self.mlp is None:
            return x
        m = self.mlp(self.norm2(x))
        return x + m if self.residual else m


def block_grad_norms(model: GPT, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The gradient of the loss on ``(x, y)`` with respect to each block's parameters:
    one L2 norm per block, first block first. Measures how much learning signal
    reaches each depth; the model's own gradients are left cleared."""
    model.zero_grad(set_to_none=True)
    model(x, y)[1].backward()
    norms = [
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in b.parameters() if p.grad is not None])).item() for b in model.blocks
    ]
    model.zero_grad(set_to_none=True)
    return norms


class KVCache:
    """The keys and values of every layer for the positions a model has already read,
    so that generating a token needs attention for that token only."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length


class GPT(nn.Module):
    """Decoder-only transformer language model.

    ``forward(idx (B, T), targets (B, T) or None)`` returns ``(logits (B, T, V), loss)``;
    ``targets[b, t]`` is the token that follows ``idx[b, t]``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context, config.d_model) if config.positions == "learned" else None
        if config.positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(config.context, config.d_model), persistent=False)
        self.drop = dropout_layer(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = make_norm(config)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # GPT-2's initialisation: small normal weights, zero biases.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Trainable parameters, counting a tied embedding/output matrix once
        (see ``lmkit.train.num_parameters``)."""
        return num_parameters(self)

    def embed(self, idx: torch.Tensor, past: int = 0) -> torch.Tensor:
        """Token embeddings plus the embeddings of positions past .. past + T - 1: (B, T, C).
        Rotary positions are applied inside attention instead."""
        T = idx.shape[1]
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(past, past + T, device=idx.device))
        elif self.config.positions == "sinusoidal":
            x = x + self.pos_table[past : past + T]
        return x

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layers)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With a ``cache``, ``idx`` continues the cached positions (which it extends).
        Targets equal to ``IGNORE_INDEX`` are ignored (e.g. padding or a prompt)."""
        logits = self.head(self.hidden(idx, cache))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final-norm states (B, T, C) the output layer reads: what a classification
        head (chapter 5) reads instead."""
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        past = 0 if cache is None else cache.length
        T = idx.shape[1]
        if past + T > self.config.context and self.config.positions in ("learned", "sinusoidal"):
            raise ValueError(
                f"sequence of length {past + T} is longer than the context of {self.config.context} positions this model was built for"
            )
        x = self.drop(self.embed(idx, past))
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache.layers[i])
        return self.norm(x)
