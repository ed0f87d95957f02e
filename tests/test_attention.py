"""Tests for lmkit.attention: scaled dot-product attention, masks, position encodings, multi-head attention.

torch has independent implementations of the two central pieces:
torch.nn.functional.scaled_dot_product_attention and nn.MultiheadAttention (which
stores its projections as lmkit's MultiHeadAttention does, so weights can be
copied). They serve as references number for number. Position encodings are
checked against values worked out by hand and against the properties they are
built for (RoPE: norms kept, q . k depends on the vectors and the offset s - t only).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmkit.attention import MultiHeadAttention, RoPE, activation_bytes, causal_mask, scaled_dot_product_attention, sinusoidal_positions

# float32 agreement with torch: the same sums in a different order.
ATOL = 1e-6
# Through two projections and a softmax the rounding differences grow a little.
MHA_ATOL = 1e-5

B, H, T, D = 2, 3, 5, 4  # batch, heads, sequence length, head size
C, N_HEADS = 12, 3  # model width and heads for the multi-head tests

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def qkv(t_q=T, t_k=T, d=D, d_v=D, lead=(B, H), requires_grad=False):
    return (
        torch.randn(*lead, t_q, d, requires_grad=requires_grad),
        torch.randn(*lead, t_k, d, requires_grad=requires_grad),
        torch.randn(*lead, t_k, d_v, requires_grad=requires_grad),
    )


def random_mask(*shape):
    """Random bool mask (True = attend) with at least one True per row: a row with
    nothing to attend to has no defined softmax."""
    mask = torch.rand(*shape) > 0.5
    keep = torch.randint(shape[-1], (*shape[:-1], 1))
    return mask.scatter(-1, keep, True)


# --- causal_mask ----------------------------------------------------------------------------


def test_causal_mask_small_cases_by_hand():
    assert torch.equal(causal_mask(1), torch.tensor([[True]]))
    assert torch.equal(causal_mask(2), torch.tensor([[True, False], [True, True]]))
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(4), expected)


def test_causal_mask_is_bool_lower_triangular_with_diagonal():
    m = causal_mask(7)
    assert m.dtype == torch.bool and m.shape == (7, 7)
    for s in range(7):
        for t in range(7):
            # query s may look at key t exactly when t is not in its future
            assert bool(m[s, t]) == (t <= s)


@pytest.mark.parametrize("T_", [0, -1])
def test_causal_mask_of_non_positive_length_raises(T_):
    with pytest.raises(ValueError, match="T"):
        causal_mask(T_)


# --- scaled_dot_product_attention against torch -------------------------------------------


def test_attention_matches_torch_without_mask():
    q, k, v = qkv()
    close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_attention_matches_torch_with_random_bool_mask():
    q, k, v = qkv()
    mask = random_mask(B, H, T, T)
    assert not mask.all()  # the mask actually hides something
    close(scaled_dot_product_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_attention_matches_torch_with_causal_mask():
    q, k, v = qkv()
    mask = causal_mask(T)
    close(scaled_dot_product_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("shape", [(T, T), (B, 1, T, T), (1, H, T, T), (B, 1, 1, T)], ids=str)
def test_attention_mask_broadcasts_over_leading_dims(shape):
    q, k, v = qkv()
    mask = random_mask(*shape)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.expand(B, H, T, T))
    close(scaled_dot_product_attention(q, k, v, mask), expected)


def test_attention_with_different_query_and_key_lengths_and_value_size():
    q, k, v = qkv(t_q=3, t_k=7, d=4, d_v=6)
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (B, H, 3, 6)
    close(out, F.scaled_dot_product_attention(q, k, v))
    # and with a (T_q, T_k) mask
    mask = random_mask(3, 7)
    close(scaled_dot_product_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_attention_without_leading_dims():
    q, k, v = qkv(lead=())
    close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_attention_weights_sum_to_one_are_zero_where_masked_and_give_the_output():
    q, k, v = qkv(t_q=4, t_k=6)
    mask = random_mask(B, H, 4, 6)
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert weights.shape == (B, H, 4, 6)
    close(weights.sum(-1), torch.ones(B, H, 4))
    # exp(-inf) is exactly 0: masked keys get no weight at all, not a tiny one
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    close(out, weights @ v)
    # asking for the weights does not change the output
    close(out, scaled_dot_product_attention(q, k, v, mask))


def test_attention_is_scaled_by_sqrt_d():
    # Hand computation for one query and two keys: softmax([q.k1, q.k2] / sqrt(d)).
    q = torch.tensor([[1.0, 2.0, 0.0, 0.0]])
    k = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    v = torch.tensor([[1.0], [0.0]])
    _, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    s1, s2 = 1 / 2, 2 / 2  # q.k / sqrt(4)
    w1 = math.exp(s1) / (math.exp(s1) + math.exp(s2))
    close(weights, torch.tensor([[w1, 1 - w1]]))


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_attention_gradients_match_torch(masked):
    q, k, v = qkv(t_q=4, t_k=6, d=4, d_v=5)
    mask = random_mask(B, H, 4, 6) if masked else None
    upstream = torch.randn(B, H, 4, 5)  # every output element gets its own gradient
    grads = []
    for fn in (scaled_dot_product_attention, lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)):
        q_, k_, v_ = (t.clone().requires_grad_() for t in (q, k, v))
        (fn(q_, k_, v_, mask) * upstream).sum().backward()
        grads.append((q_.grad, k_.grad, v_.grad))
    for ours, theirs in zip(*grads):
        close(ours, theirs, atol=1e-5)


# --- scaled_dot_product_attention: errors ---------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8], ids=str)
def test_attention_rejects_non_bool_mask(dtype):
    # A float mask would be read by torch as an additive bias: 0/1 floats would silently not mask.
    q, k, v = qkv()
    with pytest.raises(ValueError, match="bool"):
        scaled_dot_product_attention(q, k, v, causal_mask(T).to(dtype))


@pytest.mark.parametrize("shape", [(T, T + 1), (T + 1, T), (B + 1, H, T, T), (3, T)], ids=str)
def test_attention_rejects_mask_that_does_not_broadcast(shape):
    q, k, v = qkv()
    with pytest.raises(ValueError, match="broadcast"):
        scaled_dot_product_attention(q, k, v, torch.ones(shape, dtype=torch.bool))


def test_attention_rejects_query_key_size_mismatch():
    q, _, _ = qkv(d=4)
    _, k, v = qkv(d=5)
    with pytest.raises(ValueError, match="last dimension"):
        scaled_dot_product_attention(q, k, v)


def test_attention_rejects_key_value_length_mismatch():
    q, k, _ = qkv(t_k=6)
    v = torch.randn(B, H, 5, D)
    with pytest.raises(ValueError, match="length"):
        scaled_dot_product_attention(q, k, v)


# --- sinusoidal positions -------------------------------------------------------------------


def test_sinusoidal_positions_shape_and_hand_values():
    d, base = 8, 10000.0
    pe = sinusoidal_positions(10, d)
    assert pe.shape == (10, d) and pe.dtype == torch.float32
    # position 0: sin(0) = 0 on even dimensions, cos(0) = 1 on odd ones
    assert torch.equal(pe[0], torch.tensor([0.0, 1, 0, 1, 0, 1, 0, 1]))
    for t in (1, 3, 9):
        # the first pair has frequency 1: (sin t, cos t)
        close(pe[t, 0], torch.tensor(math.sin(t)))
        close(pe[t, 1], torch.tensor(math.cos(t)))
        # pair i has frequency base^(-2i/d)
        for i in range(d // 2):
            w = base ** (-2 * i / d)
            close(pe[t, 2 * i], torch.tensor(math.sin(t * w)))
            close(pe[t, 2 * i + 1], torch.tensor(math.cos(t * w)))


def test_sinusoidal_positions_odd_size_raises():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 7)


# --- RoPE -----------------------------------------------------------------------------------


def test_rope_two_dims_is_a_rotation_by_the_position():
    # head_dim 2: one pair with frequency 1, so position t rotates by t radians.
    rope = RoPE(2)
    x = torch.tensor([1.0, 0.0]).expand(1, 1, 4, 2)
    expected = torch.tensor([[math.cos(t), math.sin(t)] for t in range(4)])
    close(rope(x)[0, 0], expected)


def test_rope_pairs_dimension_i_with_i_plus_half():
    # head_dim 4: pairs (0, 2) with frequency 1 and (1, 3) with frequency 1/100.
    rope = RoPE(4)
    t = 3
    e0 = torch.tensor([1.0, 0, 0, 0]).view(1, 1, 1, 4)
    e1 = torch.tensor([0, 1.0, 0, 0]).view(1, 1, 1, 4)
    close(rope(e0, offset=t).flatten(), torch.tensor([math.cos(t), 0, math.sin(t), 0]))
    close(rope(e1, offset=t).flatten(), torch.tensor([0, math.cos(t / 100), 0, math.sin(t / 100)]))


def test_rope_at_position_zero_is_identity():
    x = torch.randn(B, H, 1, 8)
    assert torch.equal(RoPE(8)(x), x)


def test_rope_preserves_norms():
    x = torch.randn(B, H, 20, 8)
    close(RoPE(8)(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_rope_offset_equals_slicing_a_longer_sequence():
    # Rotating positions 3..5 with offset=3 is what a sequence of length 6 gets there.
    rope = RoPE(8)
    x = torch.randn(B, H, 6, 8)
    close(rope(x[:, :, 3:], offset=3), rope(x)[:, :, 3:])


def test_rope_dot_product_depends_only_on_distance():
    rope = RoPE(8)
    q, k = torch.randn(2, 1, 1, 1, 8).unbind(0)

    def score(s, t):
        return (rope(q, offset=s) * rope(k, offset=t)).sum()

    for s, t in [(0, 0), (5, 2), (2, 5), (7, 0)]:
        for shift in (1, 4, 30):
            close(score(s + shift, t + shift), score(s, t), atol=1e-5)
    # ... and it does depend on the distance, otherwise the test above proves nothing
    assert not torch.allclose(score(5, 2), score(2, 2), atol=1e-3)


def test_rope_odd_head_dim_raises():
    with pytest.raises(ValueError, match="even"):
        RoPE(5)


# --- MultiHeadAttention against torch.nn.MultiheadAttention ----------------------------------


def mha_pair(bias=True):
    ours = MultiHeadAttention(C, N_HEADS, bias=bias).eval()
    theirs = nn.MultiheadAttention(C, N_HEADS, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        if bias:
            # torch initialises these biases to zero: random values make the comparison meaningful
            ours.qkv.bias.normal_()
            ours.proj.bias.normal_()
            theirs.in_proj_bias.copy_(ours.qkv.bias)
            theirs.out_proj.bias.copy_(ours.proj.bias)
    return ours, theirs


def torch_mha(theirs, x, **kwargs):
    return theirs(x, x, x, **kwargs)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_mha_matches_torch_without_mask(bias):
    ours, theirs = mha_pair(bias)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        expected, _ = torch_mha(theirs, x, need_weights=False)
        close(ours(x), expected, MHA_ATOL)


def test_mha_matches_torch_causal():
    ours, theirs = mha_pair()
    x = torch.randn(B, T, C)
    with torch.no_grad():
        # torch's bool attn_mask is the other way round: True = NOT allowed
        expected, _ = torch_mha(theirs, x, attn_mask=~causal_mask(T), need_weights=False)
        close(ours(x, causal=True), expected, MHA_ATOL)


def test_mha_matches_torch_with_key_padding_mask():
    ours, theirs = mha_pair()
    x = torch.randn(B, T, C)
    lengths = torch.tensor([T, 3])
    attend = torch.arange(T) < lengths[:, None]  # (B, T): True on real tokens
    with torch.no_grad():
        expected, _ = torch_mha(theirs, x, key_padding_mask=~attend, need_weights=False)
        close(ours(x, mask=attend[:, None, None, :]), expected, MHA_ATOL)


def test_mha_weights_match_torch_averaged_and_per_head():
    ours, theirs = mha_pair()
    x = torch.randn(B, T, C)
    with torch.no_grad():
        out, weights = ours(x, causal=True, return_weights=True)
        assert weights.shape == (B, N_HEADS, T, T)
        expected_out, avg = torch_mha(theirs, x, attn_mask=~causal_mask(T))  # need_weights=True averages heads
        _, per_head = torch_mha(theirs, x, attn_mask=~causal_mask(T), average_attn_weights=False)
    close(out, expected_out, MHA_ATOL)
    close(weights.mean(dim=1), avg, MHA_ATOL)
    close(weights, per_head, MHA_ATOL)


@pytest.mark.parametrize("rope", [False, True], ids=["norope", "rope"])
@pytest.mark.parametrize("setting", ["nomask", "causal", "padding", "padding+causal"])
def test_mha_fast_path_equals_reference_path(setting, rope):
    mha = MultiHeadAttention(C, N_HEADS, rope=rope).eval()
    x = torch.randn(B, T, C)
    attend = (torch.arange(T) < torch.tensor([T, 3])[:, None])[:, None, None, :]
    kwargs = {"causal": "causal" in setting, "mask": attend if "padding" in setting else None}
    with torch.no_grad():
        fast = mha(x, **kwargs)  # torch's fused kernel
        reference, _ = mha(x, return_weights=True, **kwargs)  # lmkit's own scaled_dot_product_attention
    close(fast, reference, MHA_ATOL)


@pytest.mark.parametrize("rope", [False, True], ids=["norope", "rope"])
@pytest.mark.parametrize("return_weights", [False, True], ids=["fast", "reference"])
def test_mha_causal_outputs_ignore_the_future(rope, return_weights):
    mha = MultiHeadAttention(C, N_HEADS, rope=rope).eval()
    x = torch.randn(B, T, C)
    for t in range(1, T):
        changed = x.clone()
        changed[:, t:] = torch.randn(B, T - t, C)
        with torch.no_grad():
            a = mha(x, causal=True, return_weights=return_weights)
            b = mha(changed, causal=True, return_weights=return_weights)
        a, b = (a[0], b[0]) if return_weights else (a, b)
        close(b[:, :t], a[:, :t])
        assert not torch.allclose(b[:, t:], a[:, t:])  # the change did reach the later positions


def test_mha_without_causal_sees_the_future():
    # The contrast to the causal test: without the mask position 0 does depend on later tokens.
    mha = MultiHeadAttention(C, N_HEADS).eval()
    x = torch.randn(B, T, C)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        assert not torch.allclose(mha(changed)[:, 0], mha(x)[:, 0])


def test_mha_rope_changes_the_output():
    plain = MultiHeadAttention(C, N_HEADS).eval()
    rotary = MultiHeadAttention(C, N_HEADS, rope=True).eval()
    rotary.load_state_dict(plain.state_dict())  # RoPE has no parameters: same weights
    x = torch.randn(B, T, C)
    with torch.no_grad():
        assert not torch.allclose(plain(x, causal=True), rotary(x, causal=True), atol=1e-4)
        # position 0 is not rotated and, causally, sees only itself: equal there
        close(plain(x, causal=True)[:, 0], rotary(x, causal=True)[:, 0], MHA_ATOL)


def test_split_and_merge_heads():
    mha = MultiHeadAttention(C, N_HEADS)
    hd = C // N_HEADS
    x = torch.randn(B, T, C)
    split = mha.split_heads(x)
    assert split.shape == (B, N_HEADS, T, hd)
    for h in range(N_HEADS):
        assert torch.equal(split[:, h], x[:, :, h * hd : (h + 1) * hd])
    assert torch.equal(mha.merge_heads(split), x)
    y = torch.randn(B, N_HEADS, T, hd)
    assert torch.equal(mha.split_heads(mha.merge_heads(y)), y)


@pytest.mark.parametrize("d_model,n_heads", [(10, 3), (12, 0), (0, 2), (12, 5)])
def test_mha_rejects_width_not_divisible_by_heads(d_model, n_heads):
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(d_model, n_heads)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_mha_rejects_bad_dropout(dropout):
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(C, N_HEADS, dropout=dropout)


@pytest.mark.parametrize("shape", [(T, C), (B, T, C + 1), (B, 1, T, C)], ids=str)
def test_mha_rejects_wrong_input_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        MultiHeadAttention(C, N_HEADS)(torch.randn(shape))


@pytest.mark.parametrize("return_weights", [False, True], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64], ids=str)
def test_mha_rejects_non_bool_mask_on_both_paths(dtype, return_weights):
    # The reference path goes through scaled_dot_product_attention and raises; the fast path
    # must too: torch's fused kernel reads a float mask as an additive bias, so a 0/1 float
    # mask would silently hide nothing, and an int mask gives a RuntimeError from inside torch.
    mha = MultiHeadAttention(C, N_HEADS)
    x = torch.randn(B, T, C)
    with pytest.raises(ValueError, match="bool"):
        mha(x, mask=causal_mask(T).to(dtype), return_weights=return_weights)


@pytest.mark.parametrize("return_weights", [False, True], ids=["fast", "reference"])
def test_mha_rejects_mask_that_does_not_broadcast_on_both_paths(return_weights):
    mha = MultiHeadAttention(C, N_HEADS)
    x = torch.randn(B, T, C)
    with pytest.raises(ValueError, match="broadcast"):
        mha(x, mask=torch.ones(T + 1, T + 1, dtype=torch.bool), return_weights=return_weights)


# --- keep_weights, dropout, rope_base ---------------------------------------------------------


@pytest.mark.parametrize("rope", [False, True])
def test_mha_keep_weights_stores_the_weights_and_keeps_the_outputs(rope):
    torch.manual_seed(1)
    mha = MultiHeadAttention(C, N_HEADS, rope=rope).eval()
    x = torch.randn(B, T, C)
    with torch.no_grad():
        out = mha(x, causal=True)
        assert mha.last_weights is None  # by default nothing is kept
        expected_out, expected_weights = mha(x, causal=True, return_weights=True)
        mha.keep_weights = True
        kept_out = mha(x, causal=True)
    close(kept_out, out, atol=MHA_ATOL)
    close(kept_out, expected_out)
    assert torch.equal(mha.last_weights, expected_weights)
    assert mha.last_weights.shape == (B, N_HEADS, T, T)


def test_mha_dropout_drops_output_elements_never_attention_weights():
    torch.manual_seed(2)
    p = 0.5
    mha = MultiHeadAttention(C, N_HEADS, dropout=p)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        clean = mha.eval()(x, causal=True)
        out, weights = mha.train()(x, causal=True, return_weights=True)
    # The weights are those of eval mode: every row still sums to 1.
    close(weights.sum(-1), torch.ones(B, N_HEADS, T))
    close(weights, mha.eval()(x, causal=True, return_weights=True)[1])
    # Each output element is either dropped or the clean one scaled by 1 / (1 - p).
    dropped = out == 0
    assert dropped.any() and (~dropped).any()
    close(out[~dropped], clean[~dropped] / (1 - p), atol=MHA_ATOL)


def test_mha_rope_base_sets_the_rotation_frequencies():
    base = 500.0
    mha = MultiHeadAttention(C, N_HEADS, rope=True, rope_base=base)
    hd = C // N_HEADS
    close(mha.rope.freq, torch.tensor([base ** (-2 * i / hd) for i in range(hd // 2)]))
    default = MultiHeadAttention(C, N_HEADS, rope=True)
    close(default.rope.freq, torch.tensor([10000.0 ** (-2 * i / hd) for i in range(hd // 2)]))


# ---------------------------------------------------------------- memory kept for the backward pass


def test_activation_bytes_explicit_weights_grow_quadratically_fused_path_linearly():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=32, n_heads=4)
    kept = {}
    for T in (128, 256):
        x = torch.randn(1, T, 32)
        kept[T] = (activation_bytes(mha, x, causal=True, return_weights=True), activation_bytes(mha, x, causal=True))
    for T, (explicit, fused) in kept.items():
        assert explicit >= 4 * T * T * 4  # at least the (1, 4, T, T) float32 weights
        assert fused < 4 * T * T * 4
    assert kept[256][0] > 3.5 * kept[128][0]  # doubling T: about four times the memory
    assert kept[256][1] < 2.2 * kept[128][1]  # about twice


def test_activation_bytes_leaves_out_parameters_and_counts_a_linear_layer_input_once():
    layer = nn.Linear(8, 1000)
    x = torch.randn(3, 8)
    assert activation_bytes(layer, x) == x.numel() * x.element_size()  # only the input is kept for dW
    assert not x.requires_grad
