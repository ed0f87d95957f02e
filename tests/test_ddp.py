"""Training under torch.distributed (lmkit.train): two processes, gloo on loopback,
train the same run as one process at the same global batch.

One ``torchrun`` launch of this file, to pay for process start-up once: the two
processes join torchrun's group with ``lmkit.train.init_distributed``, train through
``lmkit.cli.train_main`` (what ``python -m lmkit.train`` runs) in one go and stopped
and resumed, and train a model that records which rows each process sees. Losses are
compared with a tolerance, not exactly: averaging two half-batch gradients sums the
same float32 numbers in another order than one whole-batch gradient (relative
differences near 1e-7 per step; benchmarks/bench_ddp.py found the course GPT's two
curves at most 7e-7 nats apart over 300 steps). 1e-5 nats leaves room for that and is
far below what a wrong split changes: here a process that recorded only its own half's
loss would be off by 2e-3 to 6e-3 nats from the first step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import lmkit.train
from lmkit.checkpoint import load_checkpoint
from lmkit.cli import train_main, train_parser, train_recipe
from lmkit.recipes import run
from lmkit.train import TrainConfig, init_distributed, shard, train

pytestmark = pytest.mark.usefixtures("seeded_single_thread")

TOLERANCE = 1e-5  # nats; see the module docstring
FLAGS = (
    "--n-layers 1 --d-model 16 --n-heads 2 --context 16 --batch-size 4 --steps 6 --lr 1e-2 --warmup 1 --eval-every 3 "
    "--eval-batches 2 --checkpoint-every 3 --no-samples --no-final-eval --quiet"
).split()
RECIPE = train_recipe(train_parser().parse_args(["--out", "-", *FLAGS]))  # the run that the command line trains


class RowRecorder(nn.Module):
    """Linear regression that records the first feature of every row it is called on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.rows: list[float] = []

    def forward(self, x, y):
        self.rows += x[:, 0].tolist()
        out = self.linear(x).squeeze(-1)
        return out, nn.functional.mse_loss(out, y)


def regression_batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return lambda split: (torch.randn(8, 3, generator=g), torch.randn(8, generator=g))


def _two_process_runs(out: Path) -> None:
    """What each process of the torchrun launch in ``two_processes`` does."""
    torch.set_num_threads(1)
    assert init_distributed()
    rank, writes = dist.get_rank(), []
    save_checkpoint = lmkit.train.save_checkpoint
    lmkit.train.save_checkpoint = lambda *a, **k: (writes.append(str(a[0])), save_checkpoint(*a, **k))[1]
    try:
        torch.manual_seed(0)
        model = RowRecorder()
        train(model, regression_batches(), TrainConfig(steps=2, eval_every=2, eval_batches=1, progress=False))
        train_main(["--out", str(out / "whole.pt"), *FLAGS])
        train_main(["--out", str(out / "resumed.pt"), *FLAGS, "--stop-at", "3"])
        train_main(["--out", str(out / "resumed.pt"), *FLAGS, "--resume"])
    finally:
        dist.destroy_process_group()
    (out / f"rank{rank}.json").write_text(json.dumps({"rows": model.rows, "writes": writes}))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    with torch.random.fork_rng():
        return run(RECIPE, tmp_path_factory.mktemp("one") / "one.pt")[1]["history"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out)]
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "stdout.txt").write_text(proc.stdout)
    return out


def test_shard_hand_computed():
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    x1, y1, none = shard((x, y, None), 1, 3)
    assert x1.tolist() == [[4, 5], [6, 7]] and y1.tolist() == [2, 3] and none is None
    assert torch.equal(torch.cat([shard((x,), r, 3)[0] for r in range(3)]), x)
    assert torch.equal(shard((x,), 0, 1)[0], x)


@pytest.mark.parametrize(("rows", "rank", "world_size"), [(6, 0, 4), (6, 2, 2), (6, -1, 2)])
def test_shard_rejects_uneven_splits_and_bad_ranks(rows, rank, world_size):
    with pytest.raises(ValueError, match="split evenly|rank"):
        shard((torch.zeros(rows, 2),), rank, world_size)


def test_each_process_trains_on_its_half_of_the_same_global_batch(two_processes):
    rows = [json.loads((two_processes / f"rank{r}.json").read_text())["rows"] for r in (0, 1)]
    batch = regression_batches()
    # Two training steps, then one evaluation batch: the global batches one process would draw.
    expected = [batch(split)[0][:, 0].tolist() for split in ("train", "train", "val")]
    assert rows[0] == [v for b in expected for v in b[:4]]
    assert rows[1] == [v for b in expected for v in b[4:]]


def largest_gap(one: dict, two: dict) -> float:
    assert [len(one[k]) for k in ("train_loss", "val_loss")] == [len(two[k]) for k in ("train_loss", "val_loss")] == [6, 2]
    return max(abs(a - b) for k in ("train_loss", "val_loss") for a, b in zip(one[k], two[k]))


def test_two_processes_follow_one_process_loss_curve(two_processes, one_process):
    two = load_checkpoint(two_processes / "whole.pt")["history"]
    assert largest_gap(one_process, two) < TOLERANCE
    assert two["train_loss"][-1] < two["train_loss"][0] - 0.05  # it did learn: the comparison is not vacuous


def test_only_rank_0_writes_and_a_stopped_run_resumes_exactly(two_processes):
    writes = [json.loads((two_processes / f"rank{r}.json").read_text())["writes"] for r in (0, 1)]
    assert writes[1] == []
    # whole: steps 3 and 6 and run's final save; stopped at 3: step 3 and the final save; resumed: step 6 and the final save
    assert [Path(w).name for w in writes[0]] == ["whole.pt"] * 3 + ["resumed.pt"] * 4
    whole, resumed = (load_checkpoint(two_processes / name) for name in ("whole.pt", "resumed.pt"))
    for key in ("train_loss", "val_loss", "train_step", "val_step"):
        assert resumed["history"][key] == whole["history"][key]
    for name, weight in whole["model"].items():
        assert torch.equal(resumed["model"][name], weight), name


def test_the_command_line_prints_once_from_rank_0(two_processes):
    printed = (two_processes / "stdout.txt").read_text()
    assert printed.count("parameters;") == 3 and printed.count("6 steps on 2 processes") == 2  # whole, stopped at 3, resumed


def test_a_batch_that_does_not_split_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lmkit.cli.world", lambda: (0, 2))
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path / "x.pt"), "--batch-size", "3", "--steps", "1", "--quiet"])
    assert "does not split evenly over 2 processes" in capsys.readouterr().err


if __name__ == "__main__":
    _two_process_runs(Path(sys.argv[1]))
