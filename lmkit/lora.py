"""Low-rank adapters (LoRA): finetune a few numbers beside frozen weights.

Taught in chapter 5 (parameter-efficient finetuning). A frozen linear layer
``W`` (out, in) gains a trainable update ``scale * B @ A`` with ``A`` (r, in) and
``B`` (out, r), ``r`` much smaller than ``in`` and ``out``, and
``scale = alpha / r`` (Hu et al., 2021). ``B`` starts at zero, so an adapted
model starts exactly where the pretrained one was; ``merge_lora`` folds the
update into ``W`` so that the finetuned model costs nothing extra to run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The linear layers of lmkit's blocks: attention (qkv, proj) and both MLP kinds (fc, proj; gate, up, down).
TARGETS = ("qkv", "proj", "fc", "gate", "up", "down")


class LoRALinear(nn.Module):
    """``base(x) + scale * x @ A.T @ B.T``, with ``base`` frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1 or rank > min(base.in_features, base.out_features):
            raise ValueError(f"rank must be in [1, {min(base.in_features, base.out_features)}], got {rank}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.base = base.requires_grad_(False)
        # A as nn.Linear's default initialisation would draw it; B zero: the update starts at zero.
        self.A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain linear layer computing the same function: ``W + scale * B @ A``."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.B @ self.A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def add_lora(model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...] = TARGETS) -> nn.Module:
    """Freeze every parameter of ``model`` and wrap each linear layer named in ``targets``
    (inside its blocks; never the output layer) in a ``LoRALinear``. Returns ``model``,
    whose only trainable parameters are now the adapters' ``A`` and ``B``."""
    model.requires_grad_(False)
    found = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name in targets and isinstance(child, nn.Linear)
    ]
    if not found:
        raise ValueError(f"no linear layer named {list(targets)} in the model: nothing to adapt")
    for parent, name in found:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LoRALinear`` of ``model`` by its merged linear layer. Returns ``model``
    (its merged layers trainable, as a plain model's are)."""
    wrapped = [(parent, name) for parent in model.modules() for name, child in parent.named_children() if isinstance(child, LoRALinear)]
    if not wrapped:
        raise ValueError("the model has no LoRA adapters to merge")
    for parent, name in wrapped:
        setattr(parent, name, getattr(parent, name).merged())
    return model
