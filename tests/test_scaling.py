import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from lmkit.checkpoint import CHECKPOINT_DIR
from lmkit.cli import pretrained_main
from lmkit.generate import generate
from lmkit.scaling import (
    DATA_SEEDS,
    DATA_SIZE,
    EVAL_STEPS,
    SEEDS,
    SIZES,
    STEPS,
    TRAIN,
    fit_power_law,
    fit_power_law_floor,
    non_embedding_parameters,
    repeated_passage_stream,
    train_measured,
    verbatim_continuations,
)
from lmkit.train import evaluate_lm, num_parameters
from lmkit.transformer import GPT, GPTConfig


def test_fit_power_law_hand_case():
    # y halves each time x doubles: y = 8 / x, so a = 8 and alpha = 1
    a, alpha = fit_power_law([1, 2, 4], [8, 4, 2])
    assert a == pytest.approx(8)
    assert alpha == pytest.approx(1)


def test_fit_power_law_recovers_exact_laws():
    x = [1e4, 3e4, 1e5, 3e5, 1e6]
    for a, alpha in [(2.0, 0.5), (40.0, 0.076), (0.3, -0.2)]:
        assert fit_power_law(x, [a * v ** (-alpha) for v in x]) == pytest.approx((a, alpha), rel=1e-9)


def test_fit_power_law_noisy_matches_numpy_and_truth():
    g = np.random.default_rng(0)
    x = np.logspace(3, 6, 20)
    y = 5.0 * x**-0.3 * np.exp(g.normal(0, 0.02, len(x)))
    a, alpha = fit_power_law(x.tolist(), y.tolist())
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)  # an independent least-squares line
    assert alpha == pytest.approx(-slope, rel=1e-9)
    assert a == pytest.approx(math.exp(intercept), rel=1e-9)
    assert alpha == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    "x, y, message",
    [
        ([1, 2], [1, 0], "positive"),
        ([0, 2], [1, 1], "positive"),
        ([-1, 2], [1, 1], "positive"),
        ([1], [1], "at least 2"),
        ([1, 2, 3], [1, 2], "same length"),
        ([3, 3], [1, 2], "all x are equal"),
    ],
)
def test_fit_power_law_rejects_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


def test_fit_power_law_floor_recovers_an_irreducible_loss():
    x = np.logspace(4, 7, 8)
    floor, a, alpha = fit_power_law_floor(x.tolist(), (1.5 + 40 * x**-0.35).tolist())
    # the floor is searched on a grid of min(y) / 2000 steps, so it is found to about that
    assert floor == pytest.approx(1.5, abs=2e-3)
    assert alpha == pytest.approx(0.35, abs=0.01)
    # without the floor, the same points look like a much flatter law
    assert fit_power_law(x.tolist(), (1.5 + 40 * x**-0.35).tolist())[1] < 0.2


def test_fit_power_law_floor_of_a_pure_power_law_is_zero():
    x = [1, 10, 100, 1000]
    assert fit_power_law_floor(x, [3 * v**-0.5 for v in x]) == pytest.approx((0, 3, 0.5))


def test_fit_power_law_floor_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law_floor([1, 2], [2, 1])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law_floor([1, 2, 3], [2, 1, 0])
    with pytest.raises(ValueError, match="grid"):
        fit_power_law_floor([1, 2, 3], [3, 2, 1], grid=0)


def test_non_embedding_parameters_counted_by_hand():
    model = GPT(GPTConfig.modern(vocab_size=10, context=16, d_model=8, n_layers=1, n_heads=2, mlp_hidden=16))
    # RMSNorm gain 8, attention q, k, v and output 4 * 8 * 8, RMSNorm 8, SwiGLU 3 * 8 * 16, final norm 8
    assert non_embedding_parameters(model) == 8 + 4 * 64 + 8 + 3 * 8 * 16 + 8
    learned = GPT(GPTConfig.gpt2(vocab_size=10, context=16, d_model=8, n_layers=1, n_heads=2))
    embeddings = 10 * 8 + 16 * 8  # tokens (tied to the output layer) and positions
    assert non_embedding_parameters(learned) == sum(p.numel() for p in learned.parameters()) - embeddings


def test_repeated_passage_stream_by_hand():
    data = torch.arange(100)
    stream, extra = repeated_passage_stream(data, 10, 5, share=0.2)
    # 5 * (extra + 1) = 0.2 * (100 + 5 * extra) gives extra = 3.75: 4 copies, 25 of 120 tokens
    assert extra == 4
    assert torch.equal(stream, torch.cat([data, torch.arange(10, 15).repeat(4)]))


@pytest.mark.parametrize(
    "start, length, share, message",
    [
        (0, 5, 0.0, "share"),
        (0, 5, 1.0, "share"),
        (98, 5, 0.2, "inside"),
        (-1, 5, 0.2, "inside"),
        (0, 0, 0.2, "inside"),
        (0, 50, 0.2, "already"),
    ],
)
def test_repeated_passage_stream_rejects_bad_input(start, length, share, message):
    with pytest.raises(ValueError, match=message):
        repeated_passage_stream(torch.arange(100), start, length, share)


def _tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.modern(vocab_size=7, context=16, d_model=8, n_layers=1, n_heads=2)).eval()


def test_verbatim_continuations_match_a_loop_over_generate():
    model = _tiny_gpt()
    prompt, new = 4, 6
    # the passage begins with the model's own greedy text (a full match for the first window)
    passage = torch.tensor(generate(model, [1, 2, 3, 4], 26, temperature=0))
    g = torch.Generator().manual_seed(0)
    passage[20:] = torch.randint(7, (10,), generator=g)
    got = verbatim_continuations(model, passage, 5, prompt, new)
    expected = []
    for s in torch.linspace(0, len(passage) - prompt - new, 5).long().tolist():
        written = generate(model, passage[s : s + prompt], new, temperature=0)[prompt:]
        truth = passage[s + prompt : s + prompt + new].tolist()
        expected.append(next((i for i, (w, t) in enumerate(zip(written, truth)) if w != t), new))
    assert got == expected
    assert got[0] == new
    with pytest.raises(ValueError, match="fewer than"):
        verbatim_continuations(model, passage[:9], 2, prompt, new)


def test_train_measured_records_each_eval_step_reproducibly():
    config = GPTConfig.modern(vocab_size=7, context=64, d_model=8, n_layers=1, n_heads=2)
    g = torch.Generator().manual_seed(0)
    train_data, held_out = torch.randint(7, (500,), generator=g), torch.randint(7, (200,), generator=g)
    short = dataclasses.replace(TRAIN, steps=4, warmup=1, progress=False)
    model, record = train_measured(config, train_data, {"held_out": held_out}, short, [2, 4], seed=3)
    assert len(record["losses"]["held_out"]) == 2
    assert record["losses"]["held_out"][-1] == pytest.approx(evaluate_lm(model, held_out, 64))
    _, again = train_measured(config, train_data, {"held_out": held_out}, short, [2, 4], seed=3)
    assert again["losses"] == record["losses"]
    for bad in ([], [4, 2], [2, 3]):
        with pytest.raises(ValueError, match="eval_steps"):
            train_measured(config, train_data, {"held_out": held_out}, short, bad, seed=3)


def test_shipped_results_match_the_module_settings():
    # the book reads these files: they must come from the sizes, steps and seeds defined here
    scaling = json.loads((CHECKPOINT_DIR / "scaling.json").read_text())
    assert scaling["eval_steps"] == EVAL_STEPS and scaling["steps"] == STEPS
    assert [(r["d_model"], r["n_layers"], r["seed"]) for r in scaling["results"]] == [
        (s["d_model"], s["n_layers"], seed) for s in SIZES for seed in SEEDS
    ]
    assert all(len(r["val_loss"]) == len(EVAL_STEPS) for r in scaling["results"])
    choice = json.loads((CHECKPOINT_DIR / "data_choice.json").read_text())
    assert choice["eval_steps"] == EVAL_STEPS and choice["model"] == DATA_SIZE
    assert [(r["data"], r["seed"]) for r in choice["results"]] == [(d, s) for d in ("as is", "one passage repeated") for s in DATA_SEEDS]


def test_builders_quick_trial_through_the_command_line(tmp_path, monkeypatch):
    # the bookkeeping of both builders, with one tiny model and seed and two steps
    tiny = {"d_model": 8, "n_layers": 1, "n_heads": 2}
    monkeypatch.setattr("lmkit.scaling.SIZES", [tiny])
    monkeypatch.setattr("lmkit.scaling.SEEDS", [0])
    monkeypatch.setattr("lmkit.scaling.DATA_SIZE", tiny)
    monkeypatch.setattr("lmkit.scaling.DATA_SEEDS", [0])
    pretrained_main(["--only", "scaling", "--only", "data_choice", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    (run,) = scaling["results"]
    model = GPT(GPTConfig.modern(vocab_size=65, context=64, **tiny))
    assert run["parameters"] == num_parameters(model) and run["non_embedding_parameters"] == non_embedding_parameters(model)
    assert scaling["eval_steps"] == [2] and len(run["val_loss"]) == 1 and run["val_loss"][0] > 0
    choice = json.loads((tmp_path / "data_choice.json").read_text())
    assert [r["data"] for r in choice["results"]] == ["as is", "one passage repeated"]
    assert len(choice["passage_text"]) == choice["passage_chars"]
    for r in choice["results"]:
        assert set(r["losses"]) == {"held_out", "repeated_passage", "other_passage"}
        assert all(0 <= v <= choice["continue_chars"] for v in r["verbatim"]["repeated_passage"])
