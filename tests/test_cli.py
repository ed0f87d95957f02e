"""The command lines (lmkit.cli): `python -m lmkit.train` and `python -m lmkit.pretrained`.

A tiny GPT keeps each run to a few seconds. The key property is exactness: a run
stopped half-way and resumed in a new call ends with the same weights, losses and
samples as the same run done in one go.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lmkit
from lmkit.checkpoint import load_checkpoint
from lmkit.cli import pretrained_parser, train_main, train_parser, train_recipe
from lmkit.grader import parallel

pytestmark = pytest.mark.usefixtures("seeded_single_thread")

TINY = ["--n-layers", "1", "--d-model", "16", "--n-heads", "2", "--context", "16", "--batch-size", "2", "--eval-batches", "1", "--quiet"]


def run_cli(out: Path, *flags: str) -> dict:
    train_main(["--out", str(out), *TINY, *flags])
    return load_checkpoint(out)


@pytest.mark.parametrize("parser", [train_parser(), pretrained_parser(), parallel.parser()], ids=["train", "pretrained", "grader.parallel"])
def test_every_flag_has_help(parser):
    for action in parser._actions:
        assert action.help, f"{parser.prog}: {action.option_strings} has no help"


def test_argparse_lives_only_in_the_cli_module():
    package = Path(lmkit.__file__).parent
    users = sorted(
        p.relative_to(package).as_posix() for p in package.rglob("*.py") if re.search(r"^\s*import argparse", p.read_text(), re.M)
    )
    # The grader's command stays with the grader: lmkit.cli imports torch and the training stack, which grading needs neither of.
    assert users == ["bundle.py", "cli.py", "grader/parallel.py"]


def test_trains_records_samples_and_reports_both_speeds(tmp_path, capsys):
    ckpt = run_cli(tmp_path / "run.pt", "--steps", "4", "--warmup", "1", "--eval-every", "2")
    assert ckpt["step"] == 4 and set(ckpt["samples"]) == {0, 2, 4} and ckpt["val_loss"] > 0
    assert ckpt["model_config"]["n_layers"] == 1 and len(ckpt["tokenizer"]) == 65 and "optimizer" in ckpt
    h = ckpt["history"]
    assert 0 < h["train_seconds"][-1] < h["seconds"]
    line = capsys.readouterr().out
    speeds = re.findall(r"([\d,]+) tokens/s", line)
    assert len(speeds) == 2 and "in training steps" in line and "over the whole run" in line
    step_speed, run_speed = (int(s.replace(",", "")) for s in speeds)
    assert step_speed > run_speed  # evaluation, samples and checkpoints take time too


def test_samples_and_final_evaluation_are_optional(tmp_path, capsys):
    ckpt = run_cli(tmp_path / "run.pt", "--steps", "2", "--warmup", "1", "--no-samples", "--no-final-eval")
    assert "samples" not in ckpt and "val_loss" not in ckpt
    assert "no final evaluation" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "has_bias"), [([], True), (["--no-bias"], False), (["--preset", "modern"], False), (["--preset", "modern", "--bias"], True)]
)
def test_bias_flag_defaults_to_the_preset(tmp_path, flags, has_bias):
    ckpt = run_cli(tmp_path / "run.pt", "--steps", "1", "--warmup", "0", "--no-samples", "--no-final-eval", *flags)
    assert ckpt["model_config"]["bias"] is has_bias
    assert any(k.endswith(".bias") for k in ckpt["model"]) is has_bias


def test_resume_gives_the_same_run_as_training_in_one_go(tmp_path):
    common = ["--steps", "6", "--warmup", "2", "--eval-every", "2", "--checkpoint-every", "2", "--dropout", "0.1"]
    straight = run_cli(tmp_path / "straight.pt", *common)
    stopped = run_cli(tmp_path / "resumed.pt", *common, "--stop-at", "3")
    assert stopped["step"] == 3 and "val_loss" not in stopped
    torch.manual_seed(1234)  # a new process would start from another global random state
    resumed = run_cli(tmp_path / "resumed.pt", *common, "--resume")
    assert resumed["step"] == 6
    assert list(straight["model"]) == list(resumed["model"])
    for k in straight["model"]:
        assert torch.equal(straight["model"][k], resumed["model"][k]), k
    for k in ("train_step", "train_loss", "val_step", "val_loss"):
        assert straight["history"][k] == resumed["history"][k], k
    assert straight["samples"] == resumed["samples"] and straight["val_loss"] == resumed["val_loss"]


def test_resume_with_other_flags_is_refused(tmp_path, capsys):
    common = ["--steps", "4", "--warmup", "1", "--no-samples", "--no-final-eval"]
    run_cli(tmp_path / "run.pt", *common, "--stop-at", "2")
    for flags, differ in [
        (["--lr", "0.01"], "lr differ"),
        (["--batch-size", "3"], "batch_size differ"),
        (["--steps", "8"], "steps differ"),
    ]:
        with pytest.raises(SystemExit):
            run_cli(tmp_path / "run.pt", *common, *flags, "--resume")
        err = capsys.readouterr().err
        assert differ in err and "--stop-at" in err


def test_default_warmup_is_five_percent_of_the_steps(tmp_path):
    assert run_cli(tmp_path / "a.pt", "--steps", "40", "--no-samples", "--no-final-eval")["train_config"]["warmup"] == 2
    args = train_parser().parse_args(["--out", "x.pt"])
    assert train_recipe(args).train.warmup == 100  # nanoGPT's recipe: 100 of 2000 steps


def test_bad_settings_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path / "x.pt"), "--steps", "30", "--warmup", "30"])
    assert "warmup must be in [0, steps)" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["lmkit.train", "lmkit.pretrained"])
def test_library_modules_delegate_their_command_line(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"python -m {module}" in result.stdout and "--out" in result.stdout
