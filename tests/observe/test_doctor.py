import io
import json
import math

import pytest

from wganlab.cli import main
from wganlab.config import ConfigError, resolve
from wganlab.data.mnist import mnist_available
from wganlab.observe.detectors import DETECTORS, context_of, diagnose, exploding_gradients, mode_collapse, non_finite
from wganlab.observe.detectors import oscillation, too_short_text, vanishing_generator_gradient
from wganlab.observe.doctor import Doctor
from wganlab.training.loop import Trainer

FAST_EVAL = dict(eval_samples=1000, w1_samples=500)
CONTEXT = context_of({"objective": "wasserstein", "constraint": "gradient-penalty", "steps": 1000})

# The failing runs of benchmarks/doctor_eval.py, seed 0 (each named by what it is known to produce).
MINIMAX_STRONG_D = ("gan", dict(seed=0, hidden=32, depth=3, n_critic=10, lr_d=2e-3, lr_g=2e-5, batch_size=64,
                                steps=60, log_every=5, eval_every=0, **FAST_EVAL))
NS_GAN_FAST_G = ("ns-gan", dict(seed=0, hidden=64, depth=3, lr_d=2e-4, lr_g=2e-3, batch_size=128, steps=150,
                                log_every=25, eval_every=0, **FAST_EVAL))
CLIP_DEEP = ("wgan", dict(seed=0, clip=0.1, depth=8, hidden=128, batch_size=64, steps=90, log_every=10,
                          eval_every=0, **FAST_EVAL))


def _train_lines(**series):
    """Train records from equal-length series, log lines every 10 steps."""
    n = len(next(iter(series.values())))
    return [{"kind": "train", "step": 10 * (i + 1), **{k: v[i] for k, v in series.items()}} for i in range(n)]


# -- detectors on synthetic streams: each fires on its condition and not on a near miss ---------------

def test_vanishing_gradient_needs_a_sustained_100x_drop_with_an_accurate_discriminator():
    grads = [1.0, 0.8, 0.9, 0.5, 0.005, 0.004, 0.003]
    found = vanishing_generator_gradient(_train_lines(grad_norm_g=grads, d_accuracy=[1.0] * 7), CONTEXT)
    assert found is not None and found.step == 70 and found.severity == "fatal"
    assert "objective" in found.fix  # names the knob
    # one line low is noise; a drop with an unsure discriminator is not this failure
    assert vanishing_generator_gradient(_train_lines(grad_norm_g=[1, 1, 1, 1, 0.005, 1, 1],
                                                     d_accuracy=[1.0] * 7), CONTEXT) is None
    assert vanishing_generator_gradient(_train_lines(grad_norm_g=grads, d_accuracy=[0.6] * 7), CONTEXT) is None


def test_mode_collapse_is_the_spread_falling_not_a_generator_that_starts_narrow():
    falling = _train_lines(sample_spread=[0.1, 0.6, 0.8, 0.2, 0.15, 0.1])
    found = mode_collapse(falling, CONTEXT)
    assert found is not None and found.step == 60 and "lr_g" in found.fix
    assert mode_collapse(_train_lines(sample_spread=[0.05, 0.1, 0.12, 0.2, 0.4, 0.9]), CONTEXT) is None
    modes = [{"kind": "eval", "step": s, "modes_captured": m, "high_quality_fraction": 0.5}
             for s, m in ((100, 8), (200, 5))]
    assert mode_collapse(modes, CONTEXT).step == 200
    modes[1]["modes_captured"] = 7
    assert mode_collapse(modes, CONTEXT) is None


def test_exploding_gradients_is_30x_the_early_median_on_three_lines():
    lines = _train_lines(grad_norm_d=[1.0, 2.0, 1.5, 50, 70, 100])
    assert exploding_gradients(lines, CONTEXT).step == 60
    assert exploding_gradients(_train_lines(grad_norm_d=[1.0, 2.0, 1.5, 50, 70, 20]), CONTEXT) is None


def test_oscillation_sees_a_growing_or_negative_wasserstein_estimate():
    assert oscillation(_train_lines(w_estimate=[0.5, 1.0, 0.8, 3.5, 3.9, 3.0]), CONTEXT) is None
    negative = _train_lines(w_estimate=[0.5, 1.0, 0.8, -0.2, -0.3, -0.2])
    assert "ranks generated above real" in oscillation(negative, CONTEXT).title
    assert oscillation(_train_lines(w_estimate=[0.5, 1.0, 0.8, -0.05, -0.02, -0.09]), CONTEXT) is None  # noise at 0
    growing = _train_lines(w_estimate=[0.5, 1.0, 0.8, 4.5, 6.0, 9.0])
    assert "growing" in oscillation(growing, CONTEXT).title
    assert oscillation(growing, context_of(dict(CONTEXT, objective="non-saturating"))) is None  # a logit gap, not a distance


def test_non_finite_names_the_fields():
    found = non_finite([{"kind": "train", "step": 5, "d_loss": 1.0, "grad_norm_d": math.inf}], CONTEXT)
    assert found.step == 5 and "grad_norm_d" in found.evidence["fields"] and "lr_d" in found.fix
    assert non_finite([{"kind": "train", "step": 5, "d_loss": 1.0}], CONTEXT) is None


def test_every_detector_is_silent_on_an_empty_or_steady_stream():
    steady = _train_lines(d_loss=[-0.3] * 8, g_loss=[0.5] * 8, d_accuracy=[0.7] * 8, grad_norm_g=[1.0] * 8,
                          grad_norm_d=[1.0] * 8, w_estimate=[0.3] * 8, param_norm_g=[10.0] * 8,
                          param_norm_d=[10.0] * 8, sample_spread=[0.95] * 8, input_grad_norm=[1.0] * 8,
                          lipschitz_over_1_5=[0.1] * 8)
    assert diagnose([], CONTEXT) == [] and diagnose(steady, CONTEXT) == []
    assert set(DETECTORS) == {"non_finite", "vanishing_gradient", "discriminator_overpowering", "mode_collapse",
                              "oscillation", "exploding_gradients", "lipschitz_violation", "critic_not_optimal"}


# -- real failing runs: the doctor names the failure ----------------------------------------------------

def _doctor_run(preset, overrides, strict=False):
    doctor = Doctor(strict=strict, stream=io.StringIO())
    trainer = Trainer(resolve(preset, overrides), callbacks=[doctor])
    summary = trainer.train()
    return doctor, summary


def test_minimax_gan_with_a_strong_discriminator_is_diagnosed_as_a_vanishing_gradient_and_strict_stops_it():
    doctor, summary = _doctor_run(*MINIMAX_STRONG_D, strict=True)
    names = [f.detector for f in doctor.findings]
    assert "vanishing_gradient" in names and "discriminator_overpowering" in names
    assert summary["steps"] < 60 and "vanished" in summary["stopped"]  # --strict ended it early
    printed = doctor.stream.getvalue()
    assert printed.count("the generator's gradient has vanished") == 1  # printed once
    assert "what to try" in printed and "non-saturating" in printed


def test_ns_gan_with_a_fast_generator_collapses_on_ring8_and_the_doctor_says_so():
    doctor, summary = _doctor_run(*NS_GAN_FAST_G)
    assert [f.detector for f in doctor.findings] == ["mode_collapse"]
    assert summary["modes_captured"] <= 1


def test_clipping_at_0_1_on_a_deep_critic_is_diagnosed_as_exploding_gradients():
    doctor, _ = _doctor_run(*CLIP_DEEP)
    found = {f.detector: f for f in doctor.findings}
    assert "exploding_gradients" in found and found["exploding_gradients"].severity == "fatal"
    assert "gradient-penalty" in found["exploding_gradients"].fix


def test_batch_norm_critic_with_a_gradient_penalty_is_refused(capsys):
    with pytest.raises(ConfigError, match="LayerNorm"):
        resolve(None, {"critic_norm": "batch"})
    assert main(["train", "--set", "critic_norm=batch", "--dry-run"]) == 2
    assert "LayerNorm" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(5))
def test_healthy_default_runs_on_ring8_raise_no_finding(seed):
    doctor, summary = _doctor_run("wgan-gp-2d", dict(seed=seed, steps=300, log_every=25, eval_every=100,
                                                     **FAST_EVAL))
    assert doctor.findings == [], [f.text() for f in doctor.findings]
    assert any(r["kind"] == "probe" for r in doctor.records)  # the critic probe ran and stayed quiet


@pytest.mark.parametrize("steps,log_every", [(1, 100), (2, 1), (3, 1), (15, 5), (40, 10), (249, 100), (250, 100),
                                             (300, 25), (1000, 7)])
def test_probe_lines_planned_counts_the_train_lines_the_probe_detector_reads(steps, log_every):
    from wganlab.observe.doctor import probe_lines_planned

    logged = [s for s in range(1, steps + 1) if s % log_every == 0 or s == steps]
    assert probe_lines_planned(steps, log_every) == sum(1 for s in logged if s >= 0.2 * steps)


def test_a_run_too_short_for_the_probe_detector_is_not_probed_and_is_called_too_short():
    # 2 steps logged at every step: 2 lines after the opening fifth, one short of the SUSTAIN = 3 the
    # probe detector needs; 3 steps give 3
    short = dict(hidden=16, depth=2, batch_size=32, steps=2, log_every=1, eval_every=0, **FAST_EVAL)
    doctor, summary = _doctor_run("wgan-gp", short)
    assert not any(r["kind"] == "probe" for r in doctor.records)
    assert "critic_not_optimal" in summary.get("doctor_too_short", [])
    doctor, _ = _doctor_run("wgan-gp", dict(short, steps=3))
    assert sum(r["kind"] == "probe" for r in doctor.records) == 3  # long enough: probed at every line


# -- the run folder, the report and `wganlab doctor` ---------------------------------------------------------

def test_strict_train_stops_and_findings_reach_metrics_report_and_the_doctor_command(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--preset", "gan", "--hidden", "32", "--depth", "3", "--n-critic", "10", "--lr-d", "2e-3", "--lr-g",
             "2e-5", "--batch-size", "64", "--steps", "60", "--log-every", "5", "--eval-every", "0",
             "--eval-samples", "1000", "--w1-samples", "500", "--no-progress", "--strict", "--out", str(out)]
    assert main(["train"] + flags) == 1  # stopped by a fatal finding
    err = capsys.readouterr().err
    assert err.count("FATAL at step") == 1 and "gradient has vanished" in err and "run stopped early" in err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    written = [r["detector"] for r in records if r["kind"] == "finding"]
    assert "vanishing_gradient" in written and len(written) == len(set(written))
    assert max(r["step"] for r in records if r["kind"] == "train") < 60
    html = (out / "report.html").read_text()
    assert "Doctor: findings" in html and "the generator&#x27;s gradient has vanished" in html
    assert json.loads((out / "summary.json").read_text())["findings"] == written

    assert main(["doctor", str(out), "--json"]) == 0
    offline = [json.loads(line)["detector"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(offline) == sorted(written)  # the same answer after the run as during it
    assert main(["doctor", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_watched_run_is_the_same_run():
    # the critic probe trains a copy with its own stream: the run's weights and Adam moments stay its own
    import torch

    config = resolve(overrides=dict(hidden=16, depth=2, batch_size=32, steps=30, log_every=5, eval_every=0,
                                    eval_samples=100, w1_samples=50))
    doctor = Doctor(stream=io.StringIO())
    plain, watched = Trainer(config), Trainer(config, callbacks=[doctor])
    plain.train()
    watched.train()
    assert any(r["kind"] == "probe" for r in doctor.records)  # the probe did run
    for a, b in zip(plain.critic.state_dict().values(), watched.critic.state_dict().values()):
        assert torch.equal(a, b)


def test_findings_reach_every_observer_through_the_trainer(tmp_path):
    # the doctor emits through trainer.emit: the history, TensorBoard, the live view and any callback see them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wganlab.observe.live import LiveView
    from wganlab.observe.tensorboard import TensorBoardLogger

    seen = []

    class Recorder:
        def on_record(self, trainer, record):
            seen.append(record["kind"])

    doctor = Doctor(stream=io.StringIO(), probe=True)
    live, board = LiveView(), TensorBoardLogger(tmp_path, images=False, histograms=False)
    config = resolve("gan", {"steps": 60, "log_every": 5, "eval_every": 0, "hidden": 32, "n_critic": 10, "lr_d": 2e-3,
                             "lr_g": 2e-5, "batch_size": 64, "eval_samples": 500, "w1_samples": 500})
    trainer = Trainer(config, callbacks=[doctor, live, board, Recorder()])
    trainer.train()
    board.writer.close()
    kinds = [r["kind"] for r in trainer.history]
    assert doctor.findings, "this set-up (a strong discriminator, a frozen generator) must raise a finding"
    assert kinds.count("finding") == len(doctor.findings) == seen.count("finding")
    assert [f["detector"] for f in json.loads(live.state_bytes())["findings"]] == [f.detector for f in doctor.findings]
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    assert sorted(events.Tags()["tensors"]) == sorted(f"doctor/{f.detector}/text_summary" for f in doctor.findings)


# -- image runs: the class histogram, and runs too short to judge ---------------------------------------

def _eval_line(step, counts):
    total = sum(counts)
    kl = sum(c / total * math.log(c / total * len(counts)) for c in counts if c)
    return {"kind": "eval", "step": step, "class_counts": counts, "class_kl": kl, "fid": 300.0}


def test_image_collapse_is_named_from_the_class_histogram_with_as_few_evaluations_as_the_run_has():
    three_classes = [700, 0, 0, 650, 0, 0, 650, 0, 0, 0]  # the 5-minute run of the issue: 3 of 10 classes
    even = [200] * 10
    context = {"wasserstein": True, "finished": False}
    found = mode_collapse([_eval_line(1000, three_classes), _eval_line(2000, three_classes)], context)
    assert found is not None and found.step == 2000 and found.evidence["classes kept"] == "0 3 6"
    assert "few classes" in found.title
    # one collapsed evaluation: named only at the end of the run, or with the samples bunched
    assert mode_collapse([_eval_line(1000, three_classes)], context) is None
    assert mode_collapse([_eval_line(1000, three_classes)], {**context, "finished": True}).step == 1000
    bunched = [{"kind": "train", "step": 900, "sample_spread": 0.3}, _eval_line(1000, three_classes)]
    assert mode_collapse(bunched, context).evidence["sample_spread"] == 0.3
    # near misses: a healthy histogram, one class thin (9 kept, KL small), and step 0 (untrained)
    nine = [230] * 9 + [30]
    assert mode_collapse([_eval_line(1000, even), _eval_line(2000, nine)], {**context, "finished": True}) is None
    assert mode_collapse([_eval_line(0, three_classes)], {**context, "finished": True}) is None
    # a histogram still filling in (KL falling fast: a young averaged generator) is judged later, not now
    eight = [330, 300, 280, 0, 260, 250, 0, 270, 290, 300]
    filling = [_eval_line(200, three_classes), _eval_line(400, eight)]
    assert _eval_line(400, eight)["class_kl"] < 0.6 * _eval_line(200, three_classes)["class_kl"]
    assert mode_collapse(filling, {**context, "finished": True}) is None
    assert mode_collapse(filling + [_eval_line(600, eight)], {**context, "finished": True}).step == 600
    stacked = {"kind": "eval", "step": 500, "modes_captured": 1, "n_modes": 1000, "mode_kl": 6.9}
    assert mode_collapse([stacked], {**context, "finished": True}).evidence["modes captured"] == 1


def test_a_run_too_short_for_the_detectors_says_so_instead_of_no_findings():
    config = resolve("wgan-gp", dict(steps=3, log_every=1, eval_every=0, hidden=16, eval_samples=64, seed=0))
    doctor = Doctor(stream=io.StringIO(), probe=False)
    summary = Trainer(config, callbacks=[doctor]).train()
    assert summary["findings"] == [] and "vanishing_gradient" in summary["doctor_too_short"]
    assert "[doctor] too short to judge: vanishing_gradient (3 of" in doctor.stream.getvalue()
    # the class histogram judges mode collapse from one evaluation: not listed as too short then
    assert "mode_collapse" not in (too_short_text([_eval_line(10, [5] * 10)], {"wasserstein": True}) or "")


needs_mnist = pytest.mark.skipif(not mnist_available(), reason="MNIST not fetched: run 'wganlab data fetch mnist'")


@needs_mnist
def test_the_mnist_modes_collapsing_run_gets_a_mode_collapse_finding_naming_the_classes_it_kept():
    from wganlab.experiments.mnist_modes import COLLAPSING

    preset, overrides = COLLAPSING  # the experiment's collapsing NS-GAN (lr_g = 10 lr_d), short
    doctor, summary = _doctor_run(preset, dict(net="mlp", hidden=128, depth=2, latent_dim=64, steps=200, seed=0,
                                               log_every=50, eval_every=100, eval_samples=1000, held_out=256,
                                               threads=2, **overrides))
    found = {f.detector: f for f in doctor.findings}
    assert "mode_collapse" in found, [f.text() for f in doctor.findings]
    kept = found["mode_collapse"].evidence["classes kept"].split()
    assert 1 <= len(kept) <= 5 and all(k.isdigit() for k in kept), kept
    assert summary["classes_covered"] <= 6  # what the histogram says, beside what the doctor said



@needs_mnist
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_image_runs_of_the_default_raise_no_finding(seed):
    # the image default (no preset) on real digits, 400 steps, evaluated every 200: a short healthy run
    doctor, summary = _doctor_run(None, dict(data="mnist", steps=400, seed=seed, log_every=50, eval_every=200,
                                             eval_samples=1000, held_out=256, threads=2))
    assert summary["preset"] == "wgan-gp-images"
    assert doctor.findings == [], [f.text() for f in doctor.findings]
