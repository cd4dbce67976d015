"""Exact resume, atomic checkpoints under kills, signals, the NaN guard, hostile input."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import subprocess_env
from wganlab.api import train_run
from wganlab.cli import main
from wganlab.config import ConfigError, resolve
from wganlab.runs.folder import RunFolder
from wganlab.training.loop import NonFiniteError, Trainer

SMALL = dict(hidden=16, depth=2, batch_size=32, eval_samples=200, w1_samples=100, log_every=2, eval_every=4,
             steps=12, threads=1)
CLI_SMALL = ["--hidden", "16", "--depth", "2", "--batch-size", "32", "--eval-samples", "200", "--w1-samples", "100",
             "--threads", "1", "--no-progress"]


def _losses(records):
    return [(r["step"], r["d_loss"], r["g_loss"], r["w_estimate"]) for r in records if r["kind"] == "train"]


@pytest.mark.parametrize("preset", ["wgan-gp-2d", "wgan"])  # Adam + EMA + lr decay; RMSprop + clipping
def test_n_steps_then_resume_n_more_equals_2n_in_one_go(tmp_path, preset):
    config = resolve(preset, dict(SMALL, hidden=16, depth=2, lr_decay_fraction=0.5))
    whole = Trainer(config)
    whole.train()

    first = Trainer(config, run=RunFolder.create(tmp_path / "run"))
    first.run.write_config(config)
    first.train(until=6)  # stops with a checkpoint at step 6, as an interrupted run does
    assert [p.name for p in first.run.checkpoint_files()][0] == "step-00000006.pt"
    random.random(), torch.rand(3)  # other code touching the global streams between the two halves

    summary = train_run(config, tmp_path / "run", resume=True)
    assert summary["steps"] == 12
    _, state, _ = RunFolder(tmp_path / "run").load_latest_checkpoint()
    for name in ("generator", "critic"):
        for key, value in getattr(whole, name).state_dict().items():
            assert torch.equal(state[name][key], value), f"{name}.{key}"
    ema = whole.ema.state_dict() if whole.ema is not None else {}
    for key, value in ema.items():
        assert torch.equal(state["ema"][key], value), f"ema.{key}"
    # the log goes on as if never interrupted: same losses at the same steps, no duplicates
    assert _losses(RunFolder(tmp_path / "run").read_metrics()) == _losses(whole.history)


def test_resume_skips_a_truncated_newest_checkpoint_and_refuses_another_architecture(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "8", "--eval-every", "4", "--out", str(out)] + CLI_SMALL) == 0
    run = RunFolder(out)
    newest = run.checkpoint_files()[0]
    assert newest.name == "step-00000008.pt"
    # a newer file cut short, as a non-atomic writer killed mid-save would leave it
    (out / "checkpoints" / "step-00000009.pt").write_bytes(newest.read_bytes()[:1000])
    file, state, skipped = run.load_latest_checkpoint()
    assert file == newest and state["step"] == 8 and skipped[0].startswith("step-00000009.pt")

    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "10", "--no-progress"]) == 0
    assert "skipped an unreadable checkpoint" in capsys.readouterr().err
    assert run.load_latest_checkpoint()[1]["step"] == 10

    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(dict(config, hidden=32)))
    before = sorted((p.name, p.stat().st_size) for p in out.rglob("*"))
    assert main(["train", "--resume", str(out), "--steps", "12", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another architecture" in err and "Traceback" not in err
    assert sorted((p.name, p.stat().st_size) for p in out.rglob("*")) == before  # untouched


def test_resume_refuses_changing_what_the_run_computes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--eval-every", "2", "--out", str(out)] + CLI_SMALL) == 0
    assert main(["train", "--resume", str(out), "--lr-g", "0.1"]) == 2
    assert "only --steps" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--steps", "3"] + CLI_SMALL) == 2
    assert "--resume" in capsys.readouterr().err


def _start(out, *extra):
    command = [sys.executable, "-m", "wganlab", "train", "--out", str(out), "--steps", "100000",
               "--eval-every", "0", "--log-every", "5", *CLI_SMALL, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(OMP_NUM_THREADS="1"))


def _wait_for(predicate, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the run exited early: {process.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_sigint_finishes_the_step_checkpoints_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    process = _start(out)
    _wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size > 0, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"wganlab train --resume {out}" in stdout
    step = RunFolder(out).load_latest_checkpoint()[1]["step"]
    records = RunFolder(out).read_metrics()
    assert step > 0 and records[-1]["step"] == step  # the log is flushed up to the checkpoint
    assert (out / "report.html").is_file()


def test_sigkill_at_any_moment_leaves_a_readable_newest_checkpoint(tmp_path):
    out = tmp_path / "run"
    # a checkpoint every step, so that kills land in the middle of saves
    process = _start(out, "--checkpoint-every", "1", "--keep-checkpoints", "2")
    _wait_for(lambda: RunFolder(out).checkpoint_files(), process)
    rng = random.Random(0)
    for _ in range(3):
        time.sleep(rng.uniform(0.0, 0.3))
        process.kill()
        process.wait(timeout=30)
        file, state, skipped = RunFolder(out).load_latest_checkpoint()
        assert skipped == [] and file.name == f"step-{state['step']:08d}.pt"
        assert all(torch.isfinite(v).all() for v in state["generator"].values())
        process = subprocess.Popen(
            [sys.executable, "-m", "wganlab", "train", "--resume", str(out), "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(OMP_NUM_THREADS="1"))
        resumed_from = state["step"]
        _wait_for(lambda: RunFolder(out).checkpoint_files()[0].name != f"step-{resumed_from:08d}.pt", process)
    process.kill()
    process.wait(timeout=30)


class _PoisonAt:
    """Turns one critic weight into NaN in the generator step of iteration ``at`` (once)."""

    def __init__(self, trainer, at):
        self.trainer, self.at, self.done = trainer, at, False
        self.original = trainer.generator_step
        trainer.generator_step = self

    def __call__(self, *args, **kwargs):
        stats = self.original(*args, **kwargs)
        if not self.done and self.trainer.step == self.at:
            self.done = True
            with torch.no_grad():
                next(self.trainer.critic.parameters()).view(-1)[0] = float("nan")
        return stats


def test_a_nan_rolls_back_to_the_last_good_state_with_halved_learning_rates(tmp_path):
    config = resolve(overrides=dict(SMALL, checkpoint_every=4, lr_decay_fraction=0.0))
    trainer = Trainer(config, run=RunFolder.create(tmp_path / "run"))
    _PoisonAt(trainer, at=6)  # poisoned in step 7; the log line at step 8 sees it
    summary = trainer.train()
    rollbacks = [r for r in trainer.history if r["kind"] == "rollback"]
    assert [(r["from_step"], r["step"], r["lr_scale"]) for r in rollbacks] == [(8, 4, 0.5)]
    assert summary["steps"] == 12 and trainer.lr_scale == 0.5
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(config.lr_g / 2)
    for file in trainer.run.checkpoint_files():
        state = torch.load(file, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["critic"].values()), file.name


def test_a_nan_stops_the_run_when_asked_and_no_nan_checkpoint_is_written(tmp_path):
    config = resolve(overrides=dict(SMALL, checkpoint_every=1, log_every=4, on_nonfinite="stop"))
    trainer = Trainer(config, run=RunFolder.create(tmp_path / "run"))
    _PoisonAt(trainer, at=5)
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        trainer.train()
    assert trainer.run.checkpoint_files()[0].name == "step-00000005.pt"  # the last finite state
    for file in trainer.run.checkpoint_files():
        state = torch.load(file, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["critic"].values()), file.name


def test_ddp_static_graph_is_refused_with_a_penalty():
    with pytest.raises(ConfigError, match="static graph skips the gradient all-reduce"):
        resolve(overrides=dict(ddp_static_graph=True))
    assert resolve("wgan", dict(ddp_static_graph=True)).ddp_static_graph  # clipping has no double backward
