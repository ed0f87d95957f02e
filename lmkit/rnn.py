"""Recurrent networks written from their equations.

Taught in chapter 2 (recurrent networks).

The cells store their parameters exactly as torch's do (``weight_ih``,
``weight_hh``, ``bias_ih``, ``bias_hh``; the LSTM's gate rows in torch's order
input, forget, candidate, output), so ``cell.load_state_dict(torch_cell.state_dict())``
works and the two can be compared number for number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.generate import sample_next

CellType = Literal["rnn", "lstm"]
LSTMState = tuple[torch.Tensor, torch.Tensor]


class RNNCell(nn.Module):
    """Elman cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        _init_uniform(self)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.weight_hh.new_zeros(batch_size, self.hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, input_size), h: (B, hidden_size) or None (zeros) -> h': (B, hidden_size)."""
        _check_input(self, x)
        if isinstance(h, tuple):
            raise ValueError("an RNN cell's state is one tensor h, not a tuple (h, c) as for an LSTM")
        h = self.initial_state(x.shape[0]) if h is None else h
        _check_state(self, h, x.shape[0], "h")
        return torch.tanh(x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)


class LSTMCell(nn.Module):
    """Long short-term memory cell.

    Gates, each ``sigmoid(W_ih x + b_ih + W_hh h + b_hh)`` on its block of rows:
    input ``i`` (how much new content to save), forget ``f`` (how much of the
    memory to keep), output ``o`` (how much of the memory to show); candidate
    ``g = tanh(...)``. Then ``c' = f * c + i * g`` and ``h' = o * tanh(c')``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        _init_uniform(self)

    def initial_state(self, batch_size: int) -> LSTMState:
        zeros = self.weight_hh.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone()

    def gates(self, x: torch.Tensor, state: LSTMState | None = None) -> dict[str, torch.Tensor]:
        """The four gate activations ``i, f, g, o``, each (B, hidden_size)."""
        _check_input(self, x)
        if state is not None and not (isinstance(state, tuple) and len(state) == 2):
            raise ValueError("an LSTM cell's state is a tuple (h, c) of two (B, hidden_size) tensors")
        h, c = self.initial_state(x.shape[0]) if state is None else state
        _check_state(self, h, x.shape[0], "h")
        _check_state(self, c, x.shape[0], "c")
        z = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, 4H)
        i, f, g, o = z.chunk(4, dim=-1)
        return {"i": torch.sigmoid(i), "f": torch.sigmoid(f), "g": torch.tanh(g), "o": torch.sigmoid(o)}

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        """x: (B, input_size), state: (h, c) each (B, hidden_size) or None -> (h', c')."""
        c = self.initial_state(x.shape[0])[1] if state is None else state[1]
        gate = self.gates(x, state)
        c = gate["f"] * c + gate["i"] * gate["g"]
        h = gate["o"] * torch.tanh(c)
        return h, c


def _init_uniform(cell: nn.Module) -> None:
    # torch's initialisation for recurrent cells: U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(cell.hidden_size)
    for p in cell.parameters():
        nn.init.uniform_(p, -bound, bound)


def _check_input(cell: nn.Module, x: torch.Tensor) -> None:
    if x.ndim != 2 or x.shape[1] != cell.input_size:
        raise ValueError(f"input must have shape (B, {cell.input_size}), got {tuple(x.shape)}")


def _check_state(cell: nn.Module, h: torch.Tensor, batch: int, name: str) -> None:
    if h.shape != (batch, cell.hidden_size):
        raise ValueError(f"state {name} must have shape ({batch}, {cell.hidden_size}), got {tuple(h.shape)}")


def make_cell(cell: CellType, input_size: int, hidden_size: int) -> RNNCell | LSTMCell:
    if cell == "rnn":
        return RNNCell(input_size, hidden_size)
    if cell == "lstm":
        return LSTMCell(input_size, hidden_size)
    raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")


def hidden(state: torch.Tensor | LSTMState) -> torch.Tensor:
    """The hidden vector h of a state (an LSTM state is (h, c))."""
    return state[0] if isinstance(state, tuple) else state


class Recurrent(nn.Module):
    """A cell unrolled over time: the same weights applied at every step.

    ``forward(x (B, T, C), state=None, lengths=None)`` returns ``(outputs, final)``:
    ``outputs`` (B, T, H) holds h at every step (zeros past a sequence's length),
    ``final`` the state after each sequence's last real step. ``lengths`` (B,)
    gives the true lengths of right-padded sequences.
    """

    def __init__(self, cell: CellType, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = make_cell(cell, input_size, hidden_size)

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | LSTMState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | LSTMState]:
        if x.ndim != 3 or x.shape[1] == 0:
            raise ValueError(f"input must have shape (B, T, C) with T >= 1, got {tuple(x.shape)}")
        B, T, _ = x.shape
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
                raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
            if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > T:
                raise ValueError(f"lengths must have shape ({B},) with values in 1..{T}, got {lengths.tolist()}")
        state = self.cell.initial_state(B) if state is None else state
        outputs = []
        for t in range(T):
            new = self.cell(x[:, t], state)
            if lengths is not None:
                # Finished sequences keep their state: padding must not change it.
                live = (t < lengths).unsqueeze(1)  # (B, 1)
                if isinstance(new, tuple):
                    new = tuple(torch.where(live, n, s) for n, s in zip(new, state))
                else:
                    new = torch.where(live, new, state)
            state = new
            h = hidden(state)
            outputs.append(h if lengths is None else h * (t < lengths).unsqueeze(1))
        return torch.stack(outputs, dim=1), state  # (B, T, H)


@dataclass
class RNNConfig:
    """The shape of a recurrent model: its vocabulary, embedding width, state size and cell."""

    vocab_size: int = 65
    embed_dim: int = 64
    hidden_size: int = 256
    cell: CellType = "lstm"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.cell not in ("rnn", "lstm"):
            raise ValueError(f"cell must be 'rnn' or 'lstm', got {self.cell!r}")


class RecurrentLM(nn.Module):
    """Character (or token) language model: embedding -> recurrent layer -> linear head.

    ``forward(idx (B, T), targets (B, T) or None)`` returns ``(logits (B, T, V), loss)``,
    with ``targets[b, t]`` the token that follows ``idx[b, t]``.
    """

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = Recurrent(config.cell, config.embed_dim, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: torch.Tensor | LSTMState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs, _ = self.rnn(self.embed(idx), state)
        logits = self.head(outputs)  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``idx`` (B, T) by ``max_new_tokens`` tokens chosen by ``lmkit.generate.sample_next``
        (greedy at temperature 0), carrying the state: each new token costs one cell step,
        however long the text already is."""
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"the prompt must have shape (B, T) with T >= 1, got {tuple(idx.shape)}")
        out, state = self.rnn(self.embed(idx))
        h = out[:, -1]
        tokens = [idx]
        for _ in range(max_new_tokens):
            nxt = sample_next(self.head(h), temperature, top_k, top_p, generator)  # (B, 1)
            tokens.append(nxt)
            state = self.rnn.cell(self.embed(nxt[:, 0]), state)
            h = hidden(state)
        return torch.cat(tokens, dim=1)


class SequenceClassifier(nn.Module):
    """Many-to-one: embedding -> recurrent layer -> the state after the last real
    token -> linear layer to class logits.

    ``forward(idx (B, T), lengths (B,), labels (B,) or None)`` returns ``(logits (B, K), loss)``.
    """

    def __init__(self, vocab_size: int, n_classes: int = 2, embed_dim: int = 64, hidden_size: int = 128, cell: CellType = "lstm") -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = Recurrent(cell, embed_dim, hidden_size)
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(
        self, idx: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, final = self.rnn(self.embed(idx), lengths=lengths)
        logits = self.head(hidden(final))  # (B, K)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return logits, loss


class EncoderDecoder(nn.Module):
    """Sequence to sequence: an encoder reads the source, and its final state is
    the decoder's only view of it; the decoder then writes the target token by token.

    ``forward(src (B, S), tgt_in (B, T), tgt_out (B, T) or None)`` returns
    ``(logits (B, T, V), loss)``; ``tgt_in`` is the target shifted right behind a
    start token (teacher forcing).
    """

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.encoder = Recurrent(config.cell, config.embed_dim, config.hidden_size)
        self.decoder = Recurrent(config.cell, config.embed_dim, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, summary = self.encoder(self.embed(src))  # the bottleneck: one state for the whole source
        out, _ = self.decoder(self.embed(tgt_in), summary)
        logits = self.head(out)  # (B, T, V)
        loss = None if tgt_out is None else F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        return logits, loss

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, n_out: int, start: int) -> torch.Tensor:
        """Decode ``n_out`` tokens greedily, feeding back each prediction: (B, n_out)."""
        _, state = self.encoder(self.embed(src))
        if n_out < 1:
            raise ValueError(f"n_out must be positive, got {n_out}")
        token = torch.full((src.shape[0],), start, dtype=torch.long, device=src.device)
        out = []
        for _ in range(n_out):
            state = self.decoder.cell(self.embed(token), state)
            token = self.head(hidden(state)).argmax(dim=-1)
            out.append(token)
        return torch.stack(out, dim=1)
