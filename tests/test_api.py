import numpy as np
import pytest
import torch

import wganlab
from wganlab.config import ConfigError
from wganlab.data.array import ArrayDataset

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=300, w1_samples=200, log_every=5, eval_every=0)


def test_train_on_a_users_array_and_sample_it():
    points = np.random.default_rng(0).normal([3.0, -2.0], 0.1, size=(500, 2))
    run = wganlab.train(data=points, steps=10, **TINY)
    assert isinstance(run, wganlab.Run) and run.path is None
    assert run.metrics["data"] == "array(500, 2)" and run.metrics["steps"] == 10 and "modes_captured" not in run.metrics
    samples = run.sample(64, seed=1)
    assert samples.shape == (64, 2) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, run.sample(64, seed=1))
    assert [r["step"] for r in run.history if r["kind"] == "train"] == [5, 10]
    assert run.metrics["w1"] == pytest.approx(wganlab.evaluate(run.sample(300), points, n_real=200)["w1"])


def test_evaluate_known_answers():
    rng = np.random.default_rng(0)
    points = rng.normal(0, 0.05, size=(2000, 2))
    close = wganlab.evaluate(rng.normal(0, 0.05, size=(1000, 2)), points, n_real=1000)["w1"]
    shifted = wganlab.evaluate(rng.normal(0, 0.05, size=(1000, 2)) + [1.0, 0.0], points, n_real=1000)["w1"]
    assert close < 0.02 and shifted == pytest.approx(1.0, abs=0.02)
    ring = wganlab.evaluate(torch.tensor([[1.0, 0.0]] * 50), "ring8")  # a collapsed generator
    assert (ring["modes_captured"], ring["n_modes"], ring["high_quality_fraction"]) == (1, 8, 1.0)


def test_train_into_a_folder_and_load_it_back(tmp_path):
    run = wganlab.train(preset="wgan-gp-2d", data="grid25", out=tmp_path / "run", steps=5, logger="jsonl", **TINY)
    assert run.config.data == "grid25" and (tmp_path / "run" / "report.html").is_file()
    assert wganlab.train(run.config, data="ring8", steps=1, **TINY).config.data == "ring8"
    loaded = wganlab.Run.load(tmp_path / "run")
    assert loaded.metrics["w1"] == run.metrics["w1"] and loaded.config == run.config
    np.testing.assert_allclose(loaded.sample(20, seed=3), run.sample(20, seed=3), rtol=1e-5, atol=1e-6)


def test_bad_input_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="valid keys: preset, objective"):
        wganlab.train(stepz=3)
    with pytest.raises(ConfigError, match="steps must be an integer"):
        wganlab.train(steps="many")
    with pytest.raises(ValueError, match="NaN or Inf"):
        ArrayDataset(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        wganlab.train(data=np.zeros(10))
    with pytest.raises(ValueError, match="out= needs built-in data"):
        wganlab.train(data=np.zeros((10, 2)), out=tmp_path / "run", steps=1)
    assert not (tmp_path / "run").exists()


def test_a_resume_to_more_steps_says_the_decay_is_replanned_and_records_it(tmp_path, capsys):
    from wganlab.api import train_run
    from wganlab.config import resolve
    from wganlab.runs.folder import RunFolder

    train_run(resolve(None, dict(TINY, steps=20)), tmp_path / "run")
    capsys.readouterr()
    summary = train_run(resolve(None, dict(TINY, steps=40)), tmp_path / "run", resume=True)
    said = capsys.readouterr().err
    # the old plan had decayed to 0 at step 20; over 40 steps the decay starts at step 20 at the full rate
    assert ("extending the run from 20 to 40 steps" in said and "from 0x the base at step 20" in said
            and "to 1x" in said and "already decayed over steps 10-20" in said), said
    assert RunFolder(tmp_path / "run").read_config().extended_from == 20 and summary["steps"] == 40
    train_run(resolve(None, dict(TINY, steps=40)), tmp_path / "again")  # a run planned once says nothing
    assert "extending" not in capsys.readouterr().err
    assert RunFolder(tmp_path / "again").read_config().extended_from == 0
