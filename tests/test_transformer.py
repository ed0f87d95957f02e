"""Tests for lmkit.transformer (norms, MLPs, blocks, GPT) and the attention views built on it
(lmkit.viz.attention_maps / attention_figure, lmkit.widgets.attention_explorer).

References are independent: torch.nn.LayerNorm, the formulas of RMSNorm, the
MLPs and the pre-norm block written out by hand from the submodules'
parameters, cross-entropy from log-softmax, and the parameter count of the
GPT-2 style configuration worked out on paper. Causality is checked as
behaviour: changing later tokens must not change earlier outputs.
"""

from __future__ import annotations

import dataclasses
import math

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from lmkit.attention import causal_mask
from lmkit.tokenizers import CharTokenizer
from lmkit.transformer import GPT, MLP, Block, GPTConfig, LayerNorm, RMSNorm, SwiGLU, block_grad_norms
from lmkit.viz import attention_figure, attention_maps
from lmkit.widgets import attention_explorer

# float32 agreement: the same sums in a different order.
ATOL = 1e-6
# Through a few layers the rounding differences grow a little.
MODEL_ATOL = 1e-5

B, T, D = 2, 6, 16
POSITIONS = ["learned", "sinusoidal", "rope", "none"]

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def tiny_config(**kwargs) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 11, "context": 8, "d_model": D, "n_layers": 2, "n_heads": 2, **kwargs})


def tiny_gpt(**kwargs) -> GPT:
    model = GPT(tiny_config(**kwargs)).eval()
    # GPT-2's initialisation makes biases zero and norms the identity; random values
    # make sure every parameter takes part in the comparisons below.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(std=0.1).add_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
    return model


def random_ids(batch=B, length=T, vocab=11):
    return torch.randint(vocab, (batch, length))


# --- norms ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_layernorm_matches_torch(bias):
    ours, theirs = LayerNorm(D, bias=bias), nn.LayerNorm(D, bias=bias)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
        if bias:
            ours.bias.normal_()
            theirs.bias.copy_(ours.bias)
    assert (ours.bias is None) == (not bias)
    x = torch.randn(B, T, D) * 3 + 1  # not already normalised
    close(ours(x), theirs(x), atol=1e-5)


def test_rmsnorm_by_hand():
    norm = RMSNorm(D, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(B, T, D) * 3 + 1
    expected = x / torch.sqrt((x**2).mean(dim=-1, keepdim=True) + 1e-6) * norm.weight
    close(norm(x), expected, atol=1e-5)
    # no bias, no centring: the only parameter is the gain
    assert [name for name, _ in norm.named_parameters()] == ["weight"]


# --- MLPs -----------------------------------------------------------------------------------


def test_mlp_by_hand():
    mlp = MLP(D, 4 * D)
    x = torch.randn(B, T, D)
    h = x @ mlp.fc.weight.T + mlp.fc.bias
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU
    expected = h @ mlp.proj.weight.T + mlp.proj.bias
    close(mlp(x), expected, atol=1e-5)


def test_swiglu_by_hand():
    mlp = SwiGLU(D, 40)
    assert mlp.gate.bias is None and mlp.up.bias is None and mlp.down.bias is None  # bias off by default
    x = torch.randn(B, T, D)
    g = x @ mlp.gate.weight.T
    silu = g * torch.sigmoid(g)
    expected = (silu * (x @ mlp.up.weight.T)) @ mlp.down.weight.T
    close(mlp(x), expected, atol=1e-5)


# --- GPTConfig ------------------------------------------------------------------------------


def test_config_defaults():
    c = GPTConfig()
    assert (c.vocab_size, c.context, c.d_model, c.n_layers, c.n_heads) == (65, 64, 128, 4, 4)
    assert (c.norm, c.mlp, c.positions) == ("layernorm", "gelu", "learned")
    assert c.dropout == 0.0 and c.bias and c.tie_weights
    assert c.mlp_hidden == 4 * 128


def test_config_presets():
    g = GPTConfig.gpt2()
    assert (g.norm, g.mlp, g.positions, g.bias) == ("layernorm", "gelu", "learned", True)
    m = GPTConfig.modern()
    assert (m.norm, m.mlp, m.positions, m.bias) == ("rmsnorm", "swiglu", "rope", False)
    # keyword arguments pass through and override the preset
    m2 = GPTConfig.modern(d_model=64, bias=True)
    assert m2.d_model == 64 and m2.bias and m2.norm == "rmsnorm"


def test_config_norm_eps_and_rope_base_defaults_are_the_modules_own():
    assert GPTConfig.gpt2().norm_eps == 1e-5 and GPTConfig.modern().norm_eps == 1e-6
    assert GPTConfig().rope_base == 10000.0


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_config_norm_eps_and_rope_base_reach_the_modules(preset):
    config = getattr(GPTConfig, preset)(d_model=D, n_heads=2, n_layers=2, norm_eps=1e-3, rope_base=100.0, positions="rope")
    model = GPT(config)
    norms = [m for m in model.modules() if isinstance(m, (LayerNorm, RMSNorm))]
    assert len(norms) == 2 * 2 + 1 and all(m.eps == 1e-3 for m in norms)
    hd = D // 2
    for block in model.blocks:
        close(block.attn.rope.freq, torch.tensor([100.0 ** (-2 * i / hd) for i in range(hd // 2)]))


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_config_saved_before_norm_eps_and_rope_base_loads_to_the_same_model(preset):
    config = getattr(GPTConfig, preset)(vocab_size=11, context=8, d_model=D, n_layers=2, n_heads=2)
    old = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("norm_eps", "rope_base")}
    loaded = GPTConfig(**old)
    assert loaded == config
    model = GPT(config).eval()
    again = GPT(loaded).eval()
    again.load_state_dict(model.state_dict())
    ids = random_ids()
    with torch.no_grad():
        assert torch.equal(again(ids)[0], model(ids)[0])


@pytest.mark.parametrize("name", ["norm_eps", "rope_base"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_config_rejects_non_positive_eps_and_base(name, value):
    with pytest.raises(ValueError, match="norm_eps and rope_base must be positive"):
        GPTConfig(**{name: value})


@pytest.mark.parametrize("d", [32, 64, 96, 128, 256, 384])
def test_config_mlp_hidden_defaults(d):
    assert GPTConfig(d_model=d, n_heads=4).mlp_hidden == 4 * d
    h = GPTConfig(d_model=d, n_heads=4, mlp="swiglu").mlp_hidden
    # SwiGLU has three matrices instead of two: 8d/3 keeps the parameter count of 4d,
    # rounded to a multiple of 32 for efficient kernels.
    assert h % 32 == 0
    assert abs(h - 8 * d / 3) < 32
    # explicit values are kept
    assert GPTConfig(d_model=d, n_heads=4, mlp="swiglu", mlp_hidden=100).mlp_hidden == 100


def test_config_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=10, n_heads=3)


@pytest.mark.parametrize("name", ["vocab_size", "context", "d_model", "n_layers", "n_heads"])
@pytest.mark.parametrize("value", [0, -1])
def test_config_rejects_non_positive_sizes(name, value):
    with pytest.raises(ValueError, match=name):
        GPTConfig(**{name: value})


@pytest.mark.parametrize("value", [0, -1])
def test_config_rejects_non_positive_mlp_hidden(value):
    # An explicit MLP width is a size like the others: 0 builds a model whose MLP is a
    # constant (its bias), -1 fails only later, inside nn.Linear.
    with pytest.raises(ValueError, match="mlp_hidden"):
        GPTConfig(mlp_hidden=value)


@pytest.mark.parametrize("name,value", [("norm", "batchnorm"), ("mlp", "relu"), ("positions", "alibi")])
def test_config_rejects_unknown_choices(name, value):
    with pytest.raises(ValueError, match=name):
        GPTConfig(**{name: value})


# --- Block ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_block_is_pre_norm_with_residuals(preset):
    block = Block(getattr(GPTConfig, preset)(d_model=D, n_heads=2)).eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        h = x + block.attn(block.norm1(x), causal=True)
        expected = h + block.mlp(block.norm2(h))
        close(block(x), expected)


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_block_with_zeroed_output_projections_is_identity(preset):
    # Each branch ends in a linear layer; with it zeroed only the residual path is left.
    block = Block(getattr(GPTConfig, preset)(d_model=D, n_heads=2)).eval()
    out_layers = [block.attn.proj, block.mlp.proj if preset == "gpt2" else block.mlp.down]
    with torch.no_grad():
        for layer in out_layers:
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
        x = torch.randn(B, T, D)
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_block_is_causal_by_default(preset):
    block = Block(getattr(GPTConfig, preset)(d_model=D, n_heads=2)).eval()
    x = torch.randn(B, T, D)
    changed = x.clone()
    changed[:, 3:] = torch.randn(B, T - 3, D)
    with torch.no_grad():
        close(block(changed)[:, :3], block(x)[:, :3])
        # causal=False lets the future in
        assert not torch.allclose(block(changed, causal=False)[:, :3], block(x, causal=False)[:, :3])


# --- GPT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_logits_shape_and_loss_by_hand(positions):
    model = tiny_gpt(positions=positions)
    idx, targets = random_ids(), random_ids()
    with torch.no_grad():
        logits, loss = model(idx, targets)
        assert logits.shape == (B, T, 11)
        log_probs = logits.log_softmax(dim=-1)
        expected = -log_probs.gather(-1, targets[..., None]).mean()
        close(loss, expected)
        # without targets there is no loss, and the same logits
        logits2, loss2 = model(idx)
    assert loss2 is None
    assert torch.equal(logits2, logits)


def test_gpt_tied_weights_share_storage_and_are_counted_once():
    tied = GPT(tiny_config())
    untied = GPT(tiny_config(tie_weights=False))
    assert tied.head.weight is tied.tok_emb.weight
    assert tied.head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.head.weight is not untied.tok_emb.weight
    # the untied model has one more vocab x d matrix, and nothing else differs
    assert untied.num_parameters() - tied.num_parameters() == 11 * D
    assert tied.num_parameters() == sum(p.numel() for p in tied.state_dict().values()) - 11 * D


def test_gpt_tied_weights_train_together():
    # One gradient step changes the shared matrix through both uses.
    model = tiny_gpt()
    model(random_ids(), random_ids())[1].backward()
    assert model.tok_emb.weight.grad is model.head.weight.grad


def test_gpt2_size_parameter_count():
    model = GPT(GPTConfig.gpt2(vocab_size=65, context=64, d_model=128, n_layers=4, n_heads=4))
    # By hand, per block: qkv 128*384+384, proj 128*128+128, MLP 128*512+512 and 512*128+128,
    # two LayerNorms 2*256; then token (65*128) and position (64*128) embeddings, the final
    # LayerNorm (256), and the tied head (0).
    block = (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128) + 2 * 256
    expected = 4 * block + 65 * 128 + 64 * 128 + 256
    assert model.num_parameters() == expected
    assert 790_000 < model.num_parameters() < 820_000


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_gpt_fixed_positions_reject_sequences_longer_than_context(positions):
    model = tiny_gpt(positions=positions)
    model(random_ids(length=8))  # exactly the context is fine
    with pytest.raises(ValueError, match="context of 8"):
        model(random_ids(length=9))


@pytest.mark.parametrize("positions", ["rope", "none"])
def test_gpt_relative_or_no_positions_accept_longer_sequences(positions):
    model = tiny_gpt(positions=positions)
    with torch.no_grad():
        logits, _ = model(random_ids(length=20))
    assert logits.shape == (B, 20, 11)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_is_causal(positions, preset):
    model = GPT(getattr(GPTConfig, preset)(vocab_size=11, context=8, d_model=D, n_layers=2, n_heads=2, positions=positions)).eval()
    idx = random_ids(length=8)
    with torch.no_grad():
        logits, _ = model(idx)
        for t in range(7):
            changed = idx.clone()
            changed[:, t + 1 :] = (idx[:, t + 1 :] + 1 + torch.randint(10, (B, 7 - t))) % 11  # every later token differs
            new, _ = model(changed)
            close(new[:, : t + 1], logits[:, : t + 1])
            assert not torch.allclose(new[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("preset", ["gpt2", "modern"])
def test_gpt_training_lowers_the_loss(preset):
    model = GPT(getattr(GPTConfig, preset)(vocab_size=11, context=16, d_model=D, n_layers=2, n_heads=2))
    seq = torch.tensor([1, 5, 2, 7, 3] * 3)  # period 5: after two tokens the next one is certain
    idx, targets = seq[:-1][None], seq[1:][None]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(11), abs=0.3)  # small initialisation: near uniform
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("shape", [(T,), (B, T, 1)], ids=str)
def test_gpt_rejects_idx_that_is_not_2d(shape):
    with pytest.raises(ValueError, match="idx"):
        tiny_gpt()(torch.zeros(shape, dtype=torch.long))


# --- viz.attention_maps and viz.attention_figure -----------------------------------------------


def embeddings_by_hand(model, ids):
    idx = torch.tensor([ids])
    x = model.tok_emb.weight[idx]
    if model.config.positions == "learned":
        x = x + model.pos_emb.weight[: len(ids)]
    elif model.config.positions == "sinusoidal":
        x = x + model.pos_table[: len(ids)]
    return x


@pytest.mark.parametrize("positions", POSITIONS)
def test_attention_maps_shape_rows_and_hand_computation(positions):
    model = tiny_gpt(positions=positions)
    ids = [3, 1, 4, 1, 5, 9, 2]
    maps = attention_maps(model, ids)
    n = len(ids)
    assert maps.shape == (2, 2, n, n)
    close(maps.sum(-1), torch.ones(2, 2, n))
    assert (maps[..., ~causal_mask(n)] == 0).all()  # no weight on the future
    with torch.no_grad():
        x = embeddings_by_hand(model, ids)
        for layer, block in enumerate(model.blocks):
            _, weights = block.attn(block.norm1(x), causal=True, return_weights=True)
            close(maps[layer], weights[0])
            x = block(x)
        # the last layer's input is what the model itself computes: its logits come from x
        close(model.head(model.norm(x)), model(torch.tensor([ids]))[0], MODEL_ATOL)


def test_attention_maps_leaves_the_model_as_it_was():
    model = tiny_gpt()
    ids = random_ids(1)
    with torch.no_grad():
        before = model(ids)[0]
    attention_maps(model, [3, 1, 4])
    assert all(not block.attn.keep_weights and block.attn.last_weights is None for block in model.blocks)
    with torch.no_grad():
        assert torch.equal(model(ids)[0], before)


def test_attention_maps_layer_0_fully_by_hand():
    # Layer 0 from the raw parameters: project, split heads, softmax(q k^T / sqrt(hd)) over the past.
    model = tiny_gpt()
    ids = [2, 7, 1, 8, 2]
    n, H, hd = len(ids), 2, D // 2
    with torch.no_grad():
        block = model.blocks[0]
        h = block.norm1(embeddings_by_hand(model, ids))[0]  # (n, D)
        q, k, _ = (h @ block.attn.qkv.weight.T + block.attn.qkv.bias).split(D, dim=-1)
        expected = []
        for head in range(H):
            cols = slice(head * hd, (head + 1) * hd)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(hd)
            scores = scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))
            expected.append(scores.softmax(dim=-1))
        close(attention_maps(model, ids)[0], torch.stack(expected))


def test_attention_figure_one_trace_per_head_with_dropdown():
    model = tiny_gpt(n_layers=2, n_heads=4)
    ids = [1, 2, 3, 4]
    maps = attention_maps(model, ids)
    L, H = 2, 4
    fig = attention_figure(maps, ["a", "b", " ", "\n"], title="attention")
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == L * H
    assert all(trace.type == "heatmap" for trace in fig.data)
    assert [bool(trace.visible) for trace in fig.data] == [True] + [False] * (L * H - 1)
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == L * H
    for i, button in enumerate(buttons):
        visible = button.args[0]["visible"]
        assert len(visible) == L * H and sum(visible) == 1 and visible[i]
        # the label names the layer and head whose weights the selected trace shows
        layer, head = (int(w.strip(",")) for w in button.label.split()[1::2])
        close(torch.tensor(fig.data[i].z), maps[layer, head])
    assert len(fig.data[0].x) == len(ids) and len(fig.data[0].y) == len(ids)
    # the menu stands on the top of the plot (paper y = 1), at the bottom of a top margin
    # tall enough to hold the title above it, so it cannot cover the title
    menu = fig.layout.updatemenus[0]
    assert menu.yanchor == "bottom" and 1.0 <= menu.y < 1.05
    assert fig.layout.margin.t >= 120 and fig.layout.title.y is None


# --- widgets.attention_explorer ---------------------------------------------------------------


def explorer(capsys):
    tok = CharTokenizer().train("hello world, to be or not to be")
    model = GPT(tiny_config(vocab_size=tok.vocab_size)).eval()
    box = attention_explorer(model, tok, text="hello")
    capsys.readouterr()  # drop what the first drawing printed
    return box, tok


def printed(box, capsys) -> str:
    """What the explorer wrote. Inside a kernel the Output widget captures it (in the
    front end: its ``outputs`` stay empty on the Python side); outside one, as here,
    ``with out:`` is a no-op and the print reaches stdout."""
    out = box.children[2]
    return capsys.readouterr().out + "".join(o.get("text", "") for o in out.outputs)


def test_attention_explorer_builds_and_updates(capsys):
    box, _ = explorer(capsys)
    assert isinstance(box, widgets.VBox)
    text, sliders, out = box.children
    assert isinstance(text, widgets.Textarea) and isinstance(out, widgets.Output)
    layer, head = sliders.children
    assert (layer.max, head.max) == (1, 1)  # 2 layers, 2 heads
    text.value = "to be or not to be"
    layer.value, head.value = 1, 1
    assert "never seen" not in printed(box, capsys)
    text.value = "to be " * 20  # longer than the context: the explorer keeps the last 8 characters
    text.value = ""
    assert "type some text" in printed(box, capsys)


def test_attention_explorer_reports_unknown_character_instead_of_raising(capsys):
    box, _ = explorer(capsys)
    box.children[0].value = "hello?"  # '?' is not in the training text
    message = printed(box, capsys)
    assert "'?'" in message and "never seen" in message
    # and it recovers when the text is fixed
    box.children[0].value = "hello"
    assert "never seen" not in printed(box, capsys)


# --- switching parts of the block off (chapter 3's ladder) ----------------------------------


def test_default_config_keeps_every_part_and_the_shipped_state_dict():
    c = GPTConfig()
    assert (c.norm, c.mlp, c.residual) == ("layernorm", "gelu", True)
    # A shipped checkpoint's weights name exactly the parameters a default-built GPT has.
    from lmkit.checkpoint import load_checkpoint
    from lmkit.pretrained import CHECKPOINT_DIR

    ckpt = load_checkpoint(CHECKPOINT_DIR / "char_gpt_learned.pt")
    assert set(GPT(GPTConfig(**ckpt["model_config"])).state_dict()) == set(ckpt["model"])


def test_config_saved_before_the_switches_loads_to_the_same_model():
    config = tiny_config()
    old = {k: v for k, v in dataclasses.asdict(config).items() if k != "residual"}
    assert GPTConfig(**old) == config


def test_block_without_mlp_is_attention_and_its_residual():
    block = Block(GPTConfig(d_model=D, n_heads=2, mlp="none")).eval()
    assert block.mlp is None and block.norm2 is None
    x = torch.randn(B, T, D)
    with torch.no_grad():
        close(block(x), x + block.attn(block.norm1(x), causal=True))
    with_mlp = Block(GPTConfig(d_model=D, n_heads=2))
    # Removed: the MLP (2 * (D * 4D) weights, 4D + D biases) and the second norm (2D).
    gone = 2 * D * 4 * D + 4 * D + D + 2 * D
    assert sum(p.numel() for p in with_mlp.parameters()) - sum(p.numel() for p in block.parameters()) == gone


def test_gpt_without_norms_has_no_norm_parameters_and_skips_them():
    model = tiny_gpt(norm="none")
    assert not [n for n, _ in model.named_parameters() if "norm" in n]
    block = model.blocks[0]
    x = torch.randn(B, T, D)
    with torch.no_grad():
        h = x + block.attn(x, causal=True)
        close(block(x), h + block.mlp(h))
        ids = random_ids()
        h = model.embed(ids)
        for b in model.blocks:
            h = b(h)
        close(model(ids)[0], h @ model.tok_emb.weight.T, atol=MODEL_ATOL)  # no final norm either


def test_block_without_residuals_replaces_x():
    block = Block(GPTConfig(d_model=D, n_heads=2, residual=False)).eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        h = block.attn(block.norm1(x), causal=True)
        close(block(x), block.mlp(block.norm2(h)))
        bare = Block(GPTConfig(d_model=D, n_heads=2, residual=False, mlp="none", norm="none")).eval()
        close(bare(x), bare.attn(x, causal=True))


@pytest.mark.parametrize("changes", [{"mlp": "none"}, {"norm": "none"}, {"residual": False}])
def test_switched_off_gpt_is_still_causal_and_trains(changes):
    model = tiny_gpt(**changes)
    ids = random_ids()
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 11
    with torch.no_grad():
        close(model(ids)[0][:, :4], model(changed)[0][:, :4])
    x, y = ids[:, :-1], ids[:, 1:]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model(x, y)[1].item()
    for _ in range(20):
        optimizer.zero_grad()
        model(x, y)[1].backward()
        optimizer.step()
    assert model(x, y)[1].item() < first


def test_block_grad_norms_by_hand():
    model = tiny_gpt(n_layers=3)
    ids = random_ids()
    x, y = ids[:, :-1], ids[:, 1:]
    norms = block_grad_norms(model, x, y)
    assert len(norms) == 3 and all(p.grad is None for p in model.parameters())  # gradients left cleared
    model(x, y)[1].backward()
    for block, norm in zip(model.blocks, norms):
        by_hand = math.sqrt(sum((p.grad**2).sum().item() for p in block.parameters()))
        assert norm == pytest.approx(by_hand, rel=1e-5)
