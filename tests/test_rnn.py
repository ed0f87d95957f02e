"""Tests for lmkit.rnn and lmkit.tasks: recurrent cells, unrolled layers and the models built on them.

The cells are written from their equations but store their parameters exactly
as torch's do, so torch's own modules (nn.RNNCell, nn.LSTMCell, nn.RNN, nn.LSTM
and pack_padded_sequence) serve as independent references, number for number.
The models are checked against hand computations: cross-entropy from
log-softmax, greedy decoding by re-running the full forward pass, each padded
sequence run alone.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lmkit.rnn import (
    EncoderDecoder,
    LSTMCell,
    Recurrent,
    RecurrentLM,
    RNNCell,
    RNNConfig,
    SequenceClassifier,
    hidden,
    make_cell,
)
from lmkit.tasks import COPY_VOCAB, N_DIGITS, START, copy_batch

# float32 agreement with torch: the same sums in a different order.
ATOL = 1e-6
# Unrolled over a few steps the rounding differences compound a little.
SEQ_ATOL = 1e-5

B, C, H, T = 4, 5, 3, 6

CELLS = {"rnn": (RNNCell, nn.RNNCell), "lstm": (LSTMCell, nn.LSTMCell)}
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM}


pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def random_state(kind: str, batch: int = B, requires_grad: bool = False):
    def one():
        return torch.randn(batch, H, requires_grad=requires_grad)

    return (one(), one()) if kind == "lstm" else one()


def torch_cell_call(torch_cell, x, state):
    """torch's cells take the same (h, c) tuple for the LSTM and h for the RNN; None means zeros."""
    return torch_cell(x) if state is None else torch_cell(x, state)


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


# --- cells against torch.nn.RNNCell / torch.nn.LSTMCell ---------------------------------


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_parameters_have_torch_names_and_shapes(kind):
    ours_cls, torch_cls = CELLS[kind]
    ours, theirs = ours_cls(C, H), torch_cls(C, H)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_state_dict_loads_both_ways(kind):
    ours_cls, torch_cls = CELLS[kind]
    # torch -> ours (strict loading: any name or shape difference would raise).
    ours, theirs = ours_cls(C, H), torch_cls(C, H)
    ours.load_state_dict(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    # ours -> torch, from a fresh cell of ours.
    ours, theirs = ours_cls(C, H), torch_cls(C, H)
    theirs.load_state_dict(ours.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[name], value), name


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_initialisation_is_torchs_uniform_range(kind):
    # torch draws every recurrent parameter from U(-1/sqrt(H), 1/sqrt(H)).
    ours_cls, _ = CELLS[kind]
    hidden_size = 16
    bound = hidden_size**-0.5
    for p in ours_cls(C, hidden_size).parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.5 * bound  # actually random, not zeros


@pytest.mark.parametrize("given_state", [True, False], ids=["state", "none"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_forward_matches_torch(kind, given_state):
    ours_cls, torch_cls = CELLS[kind]
    theirs = torch_cls(C, H)
    ours = ours_cls(C, H)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, C)
    state = random_state(kind) if given_state else None
    with torch.no_grad():
        expected = torch_cell_call(theirs, x, state)
        actual = ours(x, state)
    assert type(actual) is type(expected)
    for a, e in zip(as_tuple(actual), as_tuple(expected)):
        assert a.shape == (B, H)
        close(a, e)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_state_none_means_zeros(kind):
    ours_cls, _ = CELLS[kind]
    cell = ours_cls(C, H)
    x = torch.randn(B, C)
    zeros = (torch.zeros(B, H), torch.zeros(B, H)) if kind == "lstm" else torch.zeros(B, H)
    for a, e in zip(as_tuple(cell(x)), as_tuple(cell(x, zeros))):
        assert torch.equal(a, e)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_gradients_match_torch(kind):
    ours_cls, torch_cls = CELLS[kind]
    theirs = torch_cls(C, H)
    ours = ours_cls(C, H)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, C)
    state = random_state(kind)
    # A random weighting of the outputs, so that every output element gets its own upstream gradient.
    weights = [torch.randn(B, H) for _ in as_tuple(state)]

    grads = []
    for cell in (ours, theirs):
        cell.zero_grad()
        x_ = x.clone().requires_grad_()
        state_ = tuple(s.clone().requires_grad_() for s in as_tuple(state))
        out = cell(x_, state_ if kind == "lstm" else state_[0])
        loss = sum((w * o).sum() for w, o in zip(weights, as_tuple(out)))
        loss.backward()
        grads.append(
            {"x": x_.grad, **{f"state{i}": s.grad for i, s in enumerate(state_)}} | {name: p.grad for name, p in cell.named_parameters()}
        )
    ours_grads, torch_grads = grads
    assert ours_grads.keys() == torch_grads.keys()
    for name in torch_grads:
        close(ours_grads[name], torch_grads[name])


# --- the LSTM's gates ---------------------------------------------------------------------


def test_lstm_gates_follow_torch_row_order():
    # torch's layout: rows [0:H] input gate, [H:2H] forget, [2H:3H] candidate, [3H:4H] output.
    cell = LSTMCell(C, H)
    x, (h, c) = torch.randn(B, C), random_state("lstm")

    def pre(k):
        rows = slice(k * H, (k + 1) * H)
        return (x @ cell.weight_ih[rows].T + cell.bias_ih[rows] + h @ cell.weight_hh[rows].T + cell.bias_hh[rows]).detach()

    with torch.no_grad():
        gates = cell.gates(x, (h, c))
    assert set(gates) == {"i", "f", "g", "o"}
    close(gates["i"], torch.sigmoid(pre(0)))
    close(gates["f"], torch.sigmoid(pre(1)))
    close(gates["g"], torch.tanh(pre(2)))
    close(gates["o"], torch.sigmoid(pre(3)))


def test_lstm_gates_combine_into_torchs_output():
    # The textbook update from our gates, c' = f c + i g and h' = o tanh(c'), is what torch computes.
    theirs = nn.LSTMCell(C, H)
    ours = LSTMCell(C, H)
    ours.load_state_dict(theirs.state_dict())
    x, (h, c) = torch.randn(B, C), random_state("lstm")
    with torch.no_grad():
        g = ours.gates(x, (h, c))
        h_torch, c_torch = theirs(x, (h, c))
    c_new = g["f"] * c + g["i"] * g["g"]
    close(c_new, c_torch)
    close(g["o"] * torch.tanh(c_new), h_torch)


def test_lstm_gates_with_state_none_use_zeros():
    cell = LSTMCell(C, H)
    x = torch.randn(B, C)
    zeros = (torch.zeros(B, H), torch.zeros(B, H))
    for name, value in cell.gates(x).items():
        assert torch.equal(value, cell.gates(x, zeros)[name]), name


def _gate_biases(cell: LSTMCell, i: float, f: float) -> None:
    with torch.no_grad():
        cell.bias_hh.zero_()
        cell.bias_ih[0:H] = i
        cell.bias_ih[H : 2 * H] = f


def test_lstm_forget_gate_open_input_gate_closed_keeps_memory():
    # f ~ 1 and i ~ 0: c' = 1 * c + 0 * g, whatever the input.
    cell = LSTMCell(C, H)
    _gate_biases(cell, i=-50.0, f=50.0)
    x, (h, c) = 10 * torch.randn(B, C), random_state("lstm")
    with torch.no_grad():
        _, c_new = cell(x, (h, c))
    close(c_new, c)


def test_lstm_forget_gate_closed_input_gate_open_overwrites_memory():
    # f ~ 0 and i ~ 1: the old memory is dropped and replaced by the candidate g.
    # Together with the test above this shows i and f are not swapped.
    cell = LSTMCell(C, H)
    _gate_biases(cell, i=50.0, f=-50.0)
    x, (h, c) = torch.randn(B, C), random_state("lstm")
    with torch.no_grad():
        _, c_new = cell(x, (h, c))
        g = cell.gates(x, (h, c))["g"]
    close(c_new, g)
    assert not torch.allclose(c_new, c)


# --- Recurrent against torch.nn.RNN / torch.nn.LSTM --------------------------------------


def paired_layers(kind: str):
    """A torch layer and ours with the same weights (torch names end in _l0)."""
    theirs = LAYERS[kind](C, H, batch_first=True)
    ours = Recurrent(kind, C, H)
    ours.load_state_dict({f"cell.{name.removesuffix('_l0')}": v for name, v in theirs.state_dict().items()})
    return ours, theirs


def torch_final(kind: str, final):
    """torch's final state (1, B, H) per tensor -> ours: (B, H) or ((B, H), (B, H))."""
    return (final[0][0], final[1][0]) if kind == "lstm" else final[0]


def to_torch_state(kind: str, state):
    return tuple(s.unsqueeze(0) for s in state) if kind == "lstm" else state.unsqueeze(0)


def assert_same_state(actual, expected, atol=SEQ_ATOL):
    assert type(actual) is type(expected)
    for a, e in zip(as_tuple(actual), as_tuple(expected)):
        close(a, e, atol)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_matches_torch(kind):
    ours, theirs = paired_layers(kind)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        outputs, final = ours(x)
        expected_outputs, expected_final = theirs(x)
    assert outputs.shape == (B, T, H)
    close(outputs, expected_outputs, SEQ_ATOL)
    assert_same_state(final, torch_final(kind, expected_final))
    # The final h is the last output.
    assert torch.equal(hidden(final), outputs[:, -1])


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_gradients_match_torch(kind):
    ours, theirs = paired_layers(kind)
    x = torch.randn(B, T, C)
    weights = torch.randn(B, T, H)
    grads = []
    for layer in (ours, theirs):
        x_ = x.clone().requires_grad_()
        (layer(x_)[0] * weights).sum().backward()
        grads.append([x_.grad] + [p.grad for p in layer.parameters()])
    for a, e in zip(*grads):
        close(a, e, SEQ_ATOL)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_uses_initial_state(kind):
    ours, theirs = paired_layers(kind)
    x, state = torch.randn(B, T, C), random_state(kind)
    with torch.no_grad():
        outputs, final = ours(x, state)
        expected_outputs, expected_final = theirs(x, to_torch_state(kind, state))
        zero_start_outputs, _ = ours(x)
    close(outputs, expected_outputs, SEQ_ATOL)
    assert_same_state(final, torch_final(kind, expected_final))
    assert not torch.allclose(outputs, zero_start_outputs)  # the state did make a difference


LENGTHS = torch.tensor([T, 2, 5, 1])


def padded_input(garbage: str, x: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, C) input, random unless given, whose padding (past LENGTHS) is filled with garbage."""
    x = torch.randn(B, T, C) if x is None else x
    pad = torch.arange(T)[None, :] >= LENGTHS[:, None]  # (B, T)
    fill = {"zeros": torch.zeros(B, T, C), "large": 1e4 * torch.randn(B, T, C), "nan": torch.full((B, T, C), float("nan"))}
    return torch.where(pad[..., None], fill[garbage], x)


@pytest.mark.parametrize("garbage", ["large", "nan"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_with_lengths_matches_each_sequence_alone_and_packed_torch(kind, garbage):
    ours, theirs = paired_layers(kind)
    x = padded_input(garbage)
    with torch.no_grad():
        outputs, final = ours(x, lengths=LENGTHS)
        packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
        _, expected_final = theirs(packed)
    assert outputs.shape == (B, T, H)
    assert_same_state(final, torch_final(kind, expected_final))
    for b, length in enumerate(LENGTHS.tolist()):
        # Past the length: exactly zero.
        assert torch.equal(outputs[b, length:], torch.zeros(T - length, H))
        # Up to it: the same as running the unpadded sequence on its own.
        with torch.no_grad():
            alone_outputs, alone_final = ours(x[b : b + 1, :length])
        close(outputs[b, :length], alone_outputs[0])
        assert_same_state(tuple(s[b] for s in as_tuple(final)), tuple(s[0] for s in as_tuple(alone_final)), ATOL)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_padding_values_do_not_matter(kind):
    ours, _ = paired_layers(kind)
    x = torch.randn(B, T, C)  # the same real values, different padding
    with torch.no_grad():
        clean_outputs, clean_final = ours(padded_input("zeros", x), lengths=LENGTHS)
        dirty_outputs, dirty_final = ours(padded_input("large", x), lengths=LENGTHS)
    assert torch.equal(clean_outputs, dirty_outputs)
    for a, e in zip(as_tuple(clean_final), as_tuple(dirty_final)):
        assert torch.equal(a, e)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_padding_gets_no_gradient(kind):
    ours, _ = paired_layers(kind)
    x = padded_input("large").requires_grad_()
    outputs, final = ours(x, lengths=LENGTHS)
    (outputs.sum() + sum(s.sum() for s in as_tuple(final))).backward()
    pad = torch.arange(T)[None, :] >= LENGTHS[:, None]
    assert torch.equal(x.grad[pad], torch.zeros_like(x.grad[pad]))
    assert x.grad[~pad].abs().sum() > 0


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_lengths_with_initial_state_match_packed_torch(kind):
    ours, theirs = paired_layers(kind)
    x, state = padded_input("large"), random_state(kind)
    with torch.no_grad():
        _, final = ours(x, state, lengths=LENGTHS)
        packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
        _, expected_final = theirs(packed, to_torch_state(kind, state))
    assert_same_state(final, torch_final(kind, expected_final))


def test_recurrent_lengths_all_full_is_the_same_as_no_lengths():
    layer = Recurrent("lstm", C, H)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        a, (ha, ca) = layer(x)
        b, (hb, cb) = layer(x, lengths=torch.full((B,), T))
    assert torch.equal(a, b) and torch.equal(ha, hb) and torch.equal(ca, cb)


def test_recurrent_hidden_size_property():
    assert Recurrent("rnn", C, 7).hidden_size == 7


# --- clear errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("shape", [(B, C + 1), (B, C - 1), (C,), (B, 1, C)])
def test_cell_rejects_wrong_input_shape(kind, shape):
    cell = CELLS[kind][0](C, H)
    with pytest.raises(ValueError, match="input"):
        cell(torch.randn(*shape))


@pytest.mark.parametrize("shape", [(B, H + 1), (B + 1, H), (H,), (1, B, H)])
def test_rnn_cell_rejects_wrong_state_shape(shape):
    with pytest.raises(ValueError, match="state"):
        RNNCell(C, H)(torch.randn(B, C), torch.randn(*shape))


@pytest.mark.parametrize("which", ["h", "c"])
@pytest.mark.parametrize("shape", [(B, H + 1), (B + 1, H), (1, B, H)])
def test_lstm_cell_rejects_wrong_state_shape(which, shape):
    good, bad = torch.randn(B, H), torch.randn(*shape)
    state = (bad, good) if which == "h" else (good, bad)
    with pytest.raises(ValueError, match="state"):
        LSTMCell(C, H)(torch.randn(B, C), state)
    with pytest.raises(ValueError, match="state"):
        LSTMCell(C, H).gates(torch.randn(B, C), state)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_rejects_a_state_of_the_other_kind(kind):
    # Switching a notebook from "lstm" to "rnn" (or back) while keeping the state
    # code hands a cell the other kind of state: an (h, c) pair to the RNN, a bare
    # h to the LSTM. That should be the same clear error as a wrong shape, not an
    # AttributeError ("'tuple' object has no attribute 'shape'") or Python's
    # "too many values to unpack (expected 2)".
    cell = CELLS[kind][0](C, H)
    other = torch.randn(B, H) if kind == "lstm" else (torch.randn(B, H), torch.randn(B, H))
    with pytest.raises(ValueError, match="state"):
        cell(torch.randn(B, C), other)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_rejects_wrong_input_and_state(kind):
    layer = Recurrent(kind, C, H)
    with pytest.raises(ValueError):
        layer(torch.randn(B, C))  # 2-D: no time axis
    with pytest.raises(ValueError):
        layer(torch.randn(B, T, C + 1))
    bad_state = (torch.randn(B, H + 1), torch.randn(B, H + 1)) if kind == "lstm" else torch.randn(B, H + 1)
    with pytest.raises(ValueError):
        layer(torch.randn(B, T, C), bad_state)


@pytest.mark.parametrize(
    "lengths",
    [[T, 2, 0, 1], [T + 1, 2, 5, 1], [-1, 2, 5, 1], [T, 2, 5], [T, 2, 5, 1, 1], [[T], [2], [5], [1]]],
    ids=["zero", "too-long", "negative", "too-few", "too-many", "2-d"],
)
def test_recurrent_rejects_bad_lengths(lengths):
    with pytest.raises(ValueError, match="lengths"):
        Recurrent("lstm", C, H)(torch.randn(B, T, C), lengths=torch.tensor(lengths))


def test_make_cell():
    assert isinstance(make_cell("rnn", C, H), RNNCell)
    assert isinstance(make_cell("lstm", C, H), LSTMCell)
    with pytest.raises(ValueError, match="gru"):
        make_cell("gru", C, H)
    with pytest.raises(ValueError):
        Recurrent("LSTM", C, H)


@pytest.mark.parametrize("sizes", [(0, H), (C, 0), (-1, H), (C, -2)])
@pytest.mark.parametrize("kind", list(CELLS))
def test_non_positive_sizes_are_rejected(kind, sizes):
    with pytest.raises(ValueError, match="positive"):
        CELLS[kind][0](*sizes)
    with pytest.raises(ValueError, match="positive"):
        Recurrent(kind, *sizes)


# --- RecurrentLM --------------------------------------------------------------------------

V = 11


def hand_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-probability of the targets, from log-softmax and gather."""
    log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_lm_shapes_and_loss(kind):
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16, cell=kind))
    idx, targets = torch.randint(V, (B, T)), torch.randint(V, (B, T))
    logits, loss = model(idx, targets)
    assert logits.shape == (B, T, V)
    close(loss, hand_cross_entropy(logits, targets))
    logits_only, no_loss = model(idx)
    assert no_loss is None
    assert torch.equal(logits_only, logits)


def test_recurrent_lm_is_causal():
    # The logits at t come from the state after token t: later tokens cannot change them.
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    idx = torch.randint(V, (B, T))
    changed = idx.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % V
    with torch.no_grad():
        close(model(idx)[0][:, :3], model(changed)[0][:, :3], 0)
        assert not torch.allclose(model(idx)[0][:, 3:], model(changed)[0][:, 3:])


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_lm_greedy_generate_equals_recomputing_the_full_sequence(kind):
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16, cell=kind))
    prompt = torch.randint(V, (B, 3))
    n = 8
    out = model.generate(prompt, n, temperature=0)
    assert out.shape == (B, 3 + n) and out.dtype == torch.long
    assert torch.equal(out[:, :3], prompt)
    # By hand: a full forward pass over the growing sequence each time, argmax of the last logits.
    seq = prompt
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, model(seq)[0][:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_recurrent_lm_sampling_follows_the_models_distribution_by_hand():
    # The same generator consumed in the same order by torch.multinomial on the
    # model's own softmax(logits / temperature): identical samples.
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    prompt = torch.randint(V, (B, 2))
    n, temperature = 10, 0.7
    out = model.generate(prompt, n, temperature=temperature, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    seq = prompt
    with torch.no_grad():
        for _ in range(n):
            probs = F.softmax(model(seq)[0][:, -1] / temperature, dim=-1)
            seq = torch.cat([seq, torch.multinomial(probs, 1, generator=g)], dim=1)
    assert torch.equal(out, seq)


def test_recurrent_lm_seeded_sampling_is_reproducible():
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    prompt = torch.randint(V, (B, 2))

    def sample(seed):
        return model.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(seed))

    first = sample(123)
    assert first.shape == (B, 22)
    assert torch.equal(first[:, :2], prompt)
    assert ((0 <= first) & (first < V)).all()
    assert torch.equal(first, sample(123))
    assert not torch.equal(first, sample(124))


def test_recurrent_lm_generate_does_not_build_a_graph_or_change_mode():
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    out = model.generate(torch.randint(V, (1, 2)), 3)
    assert not out.requires_grad
    assert model.training


def test_recurrent_lm_negative_temperature_raises():
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.randint(V, (B, 2)), 3, temperature=-0.5)


def test_recurrent_lm_top_k_1_is_greedy():
    model = RecurrentLM(RNNConfig(V, embed_dim=8, hidden_size=16))
    prompt = torch.randint(V, (B, 2))
    sampled = model.generate(prompt, 12, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, model.generate(prompt, 12, temperature=0))


def test_recurrent_lm_keeps_its_config():
    config = RNNConfig(V, embed_dim=8, hidden_size=16, cell="rnn")
    model = RecurrentLM(config)
    assert model.config is config
    assert type(model.rnn.cell) is RNNCell
    assert model.embed.weight.shape == (V, 8) and model.head.weight.shape == (V, 16)


@pytest.mark.parametrize(
    "kwargs",
    [{"vocab_size": 0}, {"embed_dim": 0}, {"hidden_size": -1}, {"cell": "gru"}],
    ids=repr,
)
def test_rnn_config_rejects_invalid_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RNNConfig(**kwargs)


# --- SequenceClassifier ---------------------------------------------------------------------

K = 3


@pytest.mark.parametrize("kind", list(LAYERS))
def test_sequence_classifier_shapes_and_loss(kind):
    model = SequenceClassifier(V, n_classes=K, embed_dim=8, hidden_size=16, cell=kind)
    idx, labels = torch.randint(V, (B, T)), torch.randint(K, (B,))
    logits, loss = model(idx, LENGTHS, labels)
    assert logits.shape == (B, K)
    close(loss, hand_cross_entropy(logits, labels))
    assert model(idx, LENGTHS)[1] is None


@pytest.mark.parametrize("kind", list(LAYERS))
def test_sequence_classifier_uses_the_last_real_token_not_the_padding(kind):
    model = SequenceClassifier(V, n_classes=K, embed_dim=8, hidden_size=16, cell=kind)
    idx = torch.randint(V, (B, T))  # the padding is random tokens: garbage
    with torch.no_grad():
        logits, _ = model(idx, LENGTHS)
        for b, length in enumerate(LENGTHS.tolist()):
            alone, _ = model(idx[b : b + 1, :length], torch.tensor([length]))
            close(logits[b], alone[0])
        # And the padding does not matter: other tokens there, the same logits.
        other = idx.clone()
        pad = torch.arange(T)[None, :] >= LENGTHS[:, None]
        other[pad] = (other[pad] + 1) % V
        assert torch.equal(model(other, LENGTHS)[0], logits)


# --- EncoderDecoder -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(LAYERS))
def test_encoder_decoder_shapes_and_loss(kind):
    model = EncoderDecoder(RNNConfig(COPY_VOCAB, embed_dim=8, hidden_size=16, cell=kind))
    src, tgt_in, tgt_out = copy_batch(B, T, torch.Generator().manual_seed(0))
    logits, loss = model(src, tgt_in, tgt_out)
    assert logits.shape == (B, T, COPY_VOCAB)
    close(loss, hand_cross_entropy(logits, tgt_out))
    assert model(src, tgt_in)[1] is None
    # Source and target lengths may differ.
    assert model(src[:, :2], tgt_in)[0].shape == (B, T, COPY_VOCAB)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_encoder_decoder_is_causal_in_the_target(kind):
    model = EncoderDecoder(RNNConfig(COPY_VOCAB, embed_dim=8, hidden_size=16, cell=kind))
    src, tgt_in, _ = copy_batch(B, T, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = model(src, tgt_in)
        for t in range(T - 1):
            changed = tgt_in.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % COPY_VOCAB
            new_logits, _ = model(src, changed)
            assert torch.equal(new_logits[:, : t + 1], logits[:, : t + 1]), t
            assert not torch.allclose(new_logits[:, t + 1 :], logits[:, t + 1 :])


def test_encoder_decoder_keeps_its_config():
    config = RNNConfig(COPY_VOCAB, embed_dim=8, hidden_size=16, cell="rnn")
    model = EncoderDecoder(config)
    assert model.config is config and type(model.encoder.cell) is RNNCell and type(model.decoder.cell) is RNNCell


def test_encoder_decoder_depends_on_the_source():
    model = EncoderDecoder(RNNConfig(COPY_VOCAB, embed_dim=8, hidden_size=16))
    src, tgt_in, _ = copy_batch(B, T, torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert not torch.allclose(model(src, tgt_in)[0], model((src + 1) % N_DIGITS, tgt_in)[0])


@pytest.mark.parametrize("kind", list(LAYERS))
def test_encoder_decoder_greedy_equals_feeding_back_argmax_by_hand(kind):
    model = EncoderDecoder(RNNConfig(COPY_VOCAB, embed_dim=8, hidden_size=16, cell=kind))
    src, _, _ = copy_batch(B, T, torch.Generator().manual_seed(3))
    n_out = T + 2
    out = model.greedy(src, n_out, start=START)
    assert out.shape == (B, n_out) and out.dtype == torch.long
    # By hand, with teacher forcing on our own predictions: the full decoder pass each time.
    tgt_in = torch.full((B, 1), START)
    with torch.no_grad():
        for _ in range(n_out):
            nxt = model(src, tgt_in)[0][:, -1].argmax(dim=-1, keepdim=True)
            tgt_in = torch.cat([tgt_in, nxt], dim=1)
    assert torch.equal(out, tgt_in[:, 1:])


# --- lmkit.tasks.copy_batch -----------------------------------------------------------------


def test_copy_task_constants():
    assert (N_DIGITS, START, COPY_VOCAB) == (10, 10, 11)


def test_copy_batch_layout():
    src, tgt_in, tgt_out = copy_batch(8, 7, torch.Generator().manual_seed(0))
    for t in (src, tgt_in, tgt_out):
        assert t.shape == (8, 7) and t.dtype == torch.int64
    assert torch.equal(tgt_out, src)
    assert tgt_out.data_ptr() != src.data_ptr()  # a copy: editing one must not edit the other
    assert (tgt_in[:, 0] == START).all()
    assert torch.equal(tgt_in[:, 1:], src[:, :-1])
    assert ((0 <= src) & (src <= 9)).all()
    # 56 draws from 10 digits: more than one digit appears.
    assert len(src.unique()) > 1


def test_copy_batch_length_one():
    src, tgt_in, tgt_out = copy_batch(3, 1, torch.Generator().manual_seed(0))
    assert tgt_in.tolist() == [[START]] * 3
    assert torch.equal(tgt_out, src)


def test_copy_batch_is_deterministic_with_a_seeded_generator():
    a = copy_batch(4, 9, torch.Generator().manual_seed(42))
    b = copy_batch(4, 9, torch.Generator().manual_seed(42))
    c = copy_batch(4, 9, torch.Generator().manual_seed(43))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("sizes", [(0, 5), (5, 0), (-1, 5), (5, -3)])
def test_copy_batch_rejects_non_positive_sizes(sizes):
    with pytest.raises(ValueError, match="positive"):
        copy_batch(*sizes)
