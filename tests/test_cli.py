import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env
from wganlab.cli import build_parser, main
from wganlab.config import TrainConfig
from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES
from wganlab.core.update_rules import UPDATE_RULES
from wganlab.data import DATASETS

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
    assert config["steps"] == 6 and config["hidden"] == 16 and config["preset"] == "wgan-gp-2d-ring8"
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
    (["--objective", "hingee"], f"unknown objective 'hingee'; choose one of: {', '.join(OBJECTIVES)}"),
    (["--constraint", "sn"], f"unknown constraint 'sn'; choose one of: {', '.join(CONSTRAINTS)}"),
    (["--update-rule", "adamw"], f"choose one of: {', '.join(UPDATE_RULES)}"),
    (["--began-gamma", "2"], "began_gamma must be in (0, 1], got 2.0"),
    (["--began-lambda-k", "-1"], "began_lambda_k must be >= 0"),
    (["--unroll-steps", "-1"], "unroll_steps must be >= 0"),
    (["--held-out", "0"], "held_out must be >= 1"),
    (["--radius", "0"], "radius must be > 0"),
    (["--generator-batch-norm", "maybe"], "generator_batch_norm must be true or false, got 'maybe'"),
    (["--ddp-static-graph", "yes"], "ddp_static_graph cannot be used with the gradient-penalty constraint"),
])
def test_bad_flags_give_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out)] + flags) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_existing_run_is_refused_unless_overwrite_and_user_files_never_go(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["train", "--steps", "1", "--out", str(out)] + TINY) == 2
    assert "not a wganlab run" in _error_line(capsys)
    # --overwrite replaces only a wganlab run folder: a folder of user files is refused, untouched
    assert main(["train", "--steps", "1", "--eval-every", "0", "--out", str(out), "--overwrite"] + TINY) == 2
    assert "replaces only a wganlab run folder" in _error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]
    run = tmp_path / "real"
    assert main(["train", "--steps", "1", "--eval-every", "0", "--out", str(run)] + TINY) == 0
    capsys.readouterr()  # the run's own lines (the doctor says a 1-step run is too short to judge)
    assert main(["train", "--steps", "1", "--out", str(run)] + TINY) == 2
    assert "--overwrite" in _error_line(capsys)
    (run / "notes.txt").write_text("mine")  # a user's file inside a run folder stays
    assert main(["train", "--steps", "2", "--eval-every", "0", "--out", str(run), "--overwrite"] + TINY) == 0
    assert (run / "notes.txt").read_text() == "mine" and json.loads((run / "summary.json").read_text())["steps"] == 2
    assert not (run / ".wganlab-replaced").exists()


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


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def _train_help(capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_config_key_has_a_train_flag_of_its_name(capsys):
    flags = {option: action for action in _train_parser()._actions for option in action.option_strings}
    keys = [spec.name for spec in dataclasses.fields(TrainConfig) if spec.metadata.get("flag", True)]
    assert "--extended-from" not in flags  # written by a --resume that extends a run, never given
    for key in keys:
        flag = "--" + key.replace("_", "-")
        assert flag in flags, flag
        assert flags[flag].dest == key and flags[flag].choices is None  # the config checks the choices
        if key != "preset":
            assert flags[flag].default is None
    text = _train_help(capsys)
    assert all(f"--{key.replace('_', '-')} " in text or f"--{key.replace('_', '-')}\n" in text for key in keys)


def _flag_help(flag: str) -> str:
    return next(a.help for a in _train_parser()._actions if flag in a.option_strings)


def test_choice_flags_list_every_registry_entry_with_its_description():
    for flag, registry in (("--objective", OBJECTIVES), ("--constraint", CONSTRAINTS),
                           ("--update-rule", UPDATE_RULES), ("--data", DATASETS)):
        text = _flag_help(flag)
        for name, entry in registry.items():
            assert f"  {name}: {entry.description}" in text, (flag, name)
    assert {"began", "hinge", "lsgan", "ragan"} <= set(OBJECTIVES) and len(CONSTRAINTS) == 8
    assert "FILE.npy/.npz | PNG folder" in _flag_help("--data")
    assert "MLP" in _flag_help("--critic-norm") and "conv" in _flag_help("--critic-norm")


def test_rendered_help_names_every_objective_and_constraint(capsys):
    text = _train_help(capsys)
    text = text.split("\n\n", 1)[1]  # the flags' help, after the usage line
    objective = text[text.index("--objective OBJECTIVE"):text.index("--constraint CONSTRAINT")]
    constraint = text[text.index("--constraint CONSTRAINT"):text.index("--gp-weight")]
    assert all(f"  {name}: " in objective for name in OBJECTIVES)
    assert all(f"  {name}: " in constraint for name in CONSTRAINTS)


def test_eval_data_help_lists_the_data_sets(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert all(f"  {name}: " in text for name in DATASETS)


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("yes", True), ("false", False),
                                             ("0", False), ("no", False)])
def test_a_bool_flag_reaches_the_config(capsys, value, expected):
    assert main(["train", "--dry-run", "--generator-batch-norm", value]) == 0
    assert json.loads(capsys.readouterr().out)["generator_batch_norm"] is expected


def test_the_flags_that_were_missing_reach_the_config(capsys):
    assert main(["train", "--dry-run", "--objective", "began", "--began-gamma", "0.7", "--began-lambda-k", "0.01",
                 "--update-rule", "alternating", "--unroll-steps", "2", "--held-out", "64",
                 "--constraint", "clip", "--ddp-static-graph", "true"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["began_gamma"], config["began_lambda_k"], config["unroll_steps"], config["held_out"],
            config["ddp_static_graph"]) == (0.7, 0.01, 2, 64, True)
    assert main(["train", "--dry-run", "--update-rule", "optimistic"]) == 0
    assert json.loads(capsys.readouterr().out)["update_rule"] == "optimistic"
    assert main(["train", "--dry-run"]) == 0  # not given: the preset's values
    config = json.loads(capsys.readouterr().out)
    assert (config["began_gamma"], config["generator_batch_norm"], config["held_out"]) == (0.5, False, 1024)


def test_train_on_grid25_without_a_preset_names_the_preset_it_uses(capsys):
    assert main(["train", "--data", "grid25", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["preset"] == "wgan-gp-2d-grid25" and json.loads(out)["steps"] == 16000
    assert "no --preset for --data grid25: using wgan-gp-2d-grid25" in err
    assert main(["train", "--data", "grid25", "--preset", "wgan-gp-2d", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["preset"] == "wgan-gp-2d" and "no --preset" not in err


def test_sample_refine_prints_the_plain_generator_first_and_raises_high_quality(tmp_path, capsys):
    # a short ring8 run (not yet sharp): rejection on its calibrated critic keeps the samples on modes
    out = tmp_path / "run"
    assert main(["train", "--steps", "600", "--eval-every", "0", "--seed", "0", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    refined = tmp_path / "refined.npy"
    assert main(["sample", "--run", str(out), "--n", "2500", "--out", str(refined), "--refine", "drs"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "high quality" in line]
    assert lines[0].startswith("plain generator") and lines[1].startswith("refined (drs)")
    figures = [dict(modes=int(line.split("modes ")[1].split(",")[0]),
                    hq=float(line.split("high quality ")[1].split("%")[0])) for line in lines]
    assert figures[1]["hq"] > figures[0]["hq"] and figures[1]["modes"] >= figures[0]["modes"], lines
    assert "refined (drs) samples" in captured.out and "acceptance" in captured.err
    assert np.load(refined).shape == (2500, 2)


def test_the_command_leaves_without_teardown_after_writing_and_printing_everything(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "wganlab", "train", "--steps", "1", "--eval-every", "0",
                             "--hidden", "16", "--out", str(out)], capture_output=True, text=True, timeout=120,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert f"run folder: {out}" in result.stdout  # printed last, flushed before os._exit
    assert json.loads((out / "summary.json").read_text())["steps"] == 1
    assert (out / "report.html").is_file() and (out / "curves.png").is_file() and list(out.glob("events.out.*"))
    bad = subprocess.run([sys.executable, "-m", "wganlab", "train", "--steps", "-3"], capture_output=True,
                         text=True, timeout=60, env=subprocess_env())
    assert bad.returncode == 2 and "steps" in bad.stderr


def test_under_a_profiler_the_command_exits_the_ordinary_way():
    from wganlab.__main__ import exit_now

    sys.setprofile(lambda *args: None)
    try:
        with pytest.raises(SystemExit) as leaving:  # os._exit would end pytest here
            exit_now(3)
    finally:
        sys.setprofile(None)
    assert leaving.value.code == 3


def test_the_command_exits_with_an_idle_thread_pool_left_open(tmp_path):
    """exit_now stops idle ThreadPoolExecutor workers as the interpreter does (torch.compile leaves
    some): joining them without the pools' exit callbacks used to wait forever."""
    script = ("from concurrent.futures import ThreadPoolExecutor\n"
              "from wganlab.__main__ import exit_now\n"
              "pool = ThreadPoolExecutor(2)\n"
              "print(pool.submit(lambda: 6 * 7).result(), flush=True)\n"
              "exit_now(5)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=subprocess_env())
    assert done.returncode == 5 and done.stdout.strip() == "42", done.stderr
