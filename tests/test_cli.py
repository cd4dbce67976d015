import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env
from wganlab.cli import main

TINY = ["--hidden", "16", "--depth", "2", "--batch-size", "32", "--eval-samples", "300", "--w1-samples", "200",
        "--no-progress"]


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, never a traceback
    return err[0]


def test_train_writes_the_whole_run_folder_then_sample_and_eval_read_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "6", "--eval-every", "3", "--log-every", "2", "--out", str(out)] + TINY) == 0
    for name in ("config.json", "metrics.jsonl", "generator.safetensors", "samples.npy",
                 "summary.json", "samples.png", "curves.png", "report.html"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 6 and config["hidden"] == 16 and config["preset"] == "wgan-gp-2d"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 6]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [3, 6]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("modes_captured", "high_quality_fraction", "reverse_kl", "w1", "w_estimate"):
        assert key in summary
    assert np.load(out / "samples.npy").shape == (300, 2)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "wgan-gp-2d" in html

    drawn = tmp_path / "drawn.npy"
    assert main(["sample", "--run", str(out), "--n", "300", "--out", str(drawn)]) == 0
    # the saved generator reproduces the run's own final samples (same seed, eval mode)
    np.testing.assert_allclose(np.load(drawn), np.load(out / "samples.npy"), rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main(["eval", "--data", "ring8", "--samples", str(drawn), "--w1-samples", "200"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["modes_captured"] == summary["modes_captured"]
    assert printed["w1"] == pytest.approx(summary["w1"])


@pytest.mark.parametrize("flags, message", [
    (["--preset", "wgan-xx"], "unknown preset 'wgan-xx'; choose one of: "),
    (["--gp-weight", "-1"], "gp_weight must be >= 0"),
    (["--clip", "0"], "clip must be > 0"),
    (["--n-critic", "0"], "n_critic must be >= 1"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--data", "moons"], "choose one of: ring8, grid25, swissroll"),
    (["--set", "nonsense=1"], "unknown config key"),
    (["--steps", "ten"], "invalid int value"),
    (["--objective", "hingee"], "choose one of: minimax, non-saturating, wasserstein, lsgan, hinge, began"),
])
def test_bad_flags_give_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out)] + flags) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_existing_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["train", "--steps", "1", "--out", str(out)] + TINY) == 2
    assert "--overwrite" in _error_line(capsys)
    assert (out / "precious.txt").read_text() == "keep me"
    assert main(["train", "--steps", "1", "--eval-every", "0", "--out", str(out), "--overwrite"] + TINY) == 0
    assert not (out / "precious.txt").exists() and (out / "summary.json").is_file()


def test_eval_refuses_bad_sample_files(tmp_path, capsys):
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((10, 3)))
    assert main(["eval", "--data", "ring8", "--samples", str(wrong_shape)]) == 2
    assert "dimension 3" in _error_line(capsys)
    with_nan = tmp_path / "nan.npy"
    np.save(with_nan, np.array([[0.0, 1.0], [np.nan, 0.0]]))
    assert main(["eval", "--data", "ring8", "--samples", str(with_nan)]) == 2
    assert "NaN" in _error_line(capsys)
    assert main(["eval", "--data", "ring8", "--samples", str(tmp_path / "none.npy")]) == 2
    assert "does not exist" in _error_line(capsys)


def test_sample_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path), "--n", "5", "--out", str(tmp_path / "x.npy")]) == 2
    assert "not a wganlab run folder" in _error_line(capsys)


def test_dry_run_prints_the_resolved_config_from_toml(tmp_path, capsys):
    toml = tmp_path / "exp.toml"
    toml.write_text('preset = "wgan"\nsteps = 123\n')
    assert main(["train", "--config", str(toml), "--clip", "0.02", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["preset"], config["steps"], config["clip"], config["optimizer"]) == ("wgan", 123, 0.02, "rmsprop")


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "wganlab", "presets"], capture_output=True, text=True, timeout=60,
                            env=subprocess_env())
    assert result.returncode == 0 and "wgan-gp" in result.stdout


def test_a_printed_preset_is_a_config_file_that_resolves_to_the_preset(tmp_path, capsys):
    assert main(["presets", "wgan"]) == 0
    toml = tmp_path / "mine.toml"
    toml.write_text(capsys.readouterr().out)
    assert "description" in toml.read_text() and 'constraint = "clip"' in toml.read_text()
    assert main(["train", "--config", str(toml), "--set", "seed=4", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["constraint"], config["clip"], config["lr_d"], config["hidden"], config["seed"]) == \
        ("clip", 0.01, 5e-5, 512, 4)
    assert main(["presets", "wgan-xl"]) == 2
    line = _error_line(capsys)
    assert "unknown preset 'wgan-xl'; choose one of: " in line and "wgan-gp-2d" in line


@pytest.mark.parametrize("flags, message", [
    (["--set", "steps=ten"], "steps must be an integer, got 'ten'"),
    (["--set", "ema=high"], "ema must be a number, got 'high'"),
    (["--set", "stepz=3"], "valid keys: preset, objective, constraint"),
    (["--set", "steps"], "--set expects key=value"),
    (["--logger", "wandb"], "choose one of: both, jsonl, tensorboard"),
])
def test_set_and_logger_errors_name_the_fix(tmp_path, capsys, flags, message):
    assert main(["train", "--dry-run", "--out", str(tmp_path / "run")] + flags) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_live_port_in_use_is_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["train", "--live", "--port", str(port), "--out", str(tmp_path / "run")] + TINY) == 2
    assert "pass --port 0" in _error_line(capsys)
    assert not (tmp_path / "run").exists()
