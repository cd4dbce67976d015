import json

import numpy as np
import pytest
import torch

from wganlab.api import train_run
from wganlab.config import resolve
from wganlab.core.constraints import critic_input_gradient_norms

EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=300, w1_samples=200, log_every=2, eval_every=3, steps=6)


def _events(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def test_event_files_hold_scalars_images_and_histograms(tmp_path):
    run = tmp_path / "run"
    train_run(resolve(None, TINY), run)  # logger "both" is the default
    assert list(run.glob("events.out.tfevents.*"))
    events = _events(run)
    tags = events.Tags()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    # every train line is a scalar point, value for value (float32 in the event file)
    logged = events.Scalars("train/d_loss")
    assert [e.step for e in logged] == [r["step"] for r in train] == [2, 4, 6]
    np.testing.assert_allclose([e.value for e in logged], [r["d_loss"] for r in train], rtol=1e-6)
    assert [e.step for e in events.Scalars("eval/w1")] == [3, 6]
    for tag in ("train/g_loss", "train/w_estimate", "train/grad_norm_g", "train/gp_grad_norm",
                "eval/modes_captured", "eval/high_quality_fraction"):
        assert tag in tags["scalars"], tag
    # the scatter and the critic contours, one image per evaluation, real PNGs
    for tag in ("samples/scatter", "critic/contours"):
        images = events.Images(tag)
        assert [i.step for i in images] == [3, 6]
        assert images[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and images[0].width > 200
    # weight histograms count every weight: the first generator layer is 16 x 2 (latent 2)
    weights = events.Histograms("weights/generator/0.weight")
    assert [h.step for h in weights] == [3, 6] and weights[0].histogram_value.num == 32
    assert "gradients/critic/0.weight" in tags["histograms"]
    norms = events.Histograms("critic_input_grad_norm/real")[0].histogram_value
    assert norms.num == 512 and norms.min >= 0


def test_a_packed_critic_gets_its_gradient_norm_histograms_on_whole_packs(tmp_path):
    # pacgan3 scores packs of 3: the 512 histogram points are cut to 510 (before: every PacGAN3 run
    # with TensorBoard stopped at its first evaluation, "does not split into packs of pack=3")
    run = tmp_path / "run"
    train_run(resolve("pacgan3", dict(TINY, hidden=16, depth=2, batch_size=30, held_out=600)), run)
    for name in ("real", "generated"):
        norms = _events(run).Histograms(f"critic_input_grad_norm/{name}")
        assert [h.step for h in norms] == [3, 6] and norms[0].histogram_value.num == 510


def test_logger_choice_decides_which_files_are_written(tmp_path):
    only_board = tmp_path / "board"
    train_run(resolve(None, dict(TINY, steps=2, eval_every=0, logger="tensorboard")), only_board)
    assert list(only_board.glob("events.out.tfevents.*")) and not (only_board / "metrics.jsonl").exists()
    assert [e.step for e in _events(only_board).Scalars("train/d_loss")] == [2]
    only_jsonl = tmp_path / "jsonl"
    train_run(resolve(None, dict(TINY, steps=2, eval_every=0, logger="jsonl")), only_jsonl)
    assert not list(only_jsonl.glob("events.out.tfevents.*")) and (only_jsonl / "metrics.jsonl").is_file()


def test_critic_input_gradient_norms_of_a_linear_critic_are_its_weight_norm():
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    norms = critic_input_gradient_norms(critic, torch.randn(7, 2).requires_grad_(True), create_graph=False)
    torch.testing.assert_close(norms, torch.full((7,), 5.0))
    assert critic.weight.grad is None  # the trainer's parameter gradients are left alone


def test_image_data_gets_a_sample_grid(tmp_path):
    from wganlab.data.array import ArrayDataset
    from wganlab.observe.tensorboard import TensorBoardLogger
    from wganlab.training.loop import Trainer

    images = ArrayDataset(np.random.default_rng(0).uniform(-1, 1, size=(100, 16)))
    images.image_shape = (1, 4, 4)  # 16 numbers per sample are a 4 x 4 grey image
    board = TensorBoardLogger(tmp_path)
    Trainer(resolve(None, dict(TINY, steps=2, eval_every=0)), dataset=images, callbacks=[board]).train()
    grids = _events(tmp_path).Images("samples/grid")
    # 64 samples in 8 columns of 4 x 4 images: one 32 x 32 picture at the final step
    assert [(g.step, g.width, g.height) for g in grids] == [(2, 32, 32)]
    assert "samples/scatter" not in _events(tmp_path).Tags()["images"]  # no 2-D scatter of 16-D data


def test_tensorboard_is_imported_without_the_remote_file_systems_and_leaves_them_importable():
    """boto3 and fsspec (tensorboard's s3:// and remote back-ends, ~0.07 s) are hidden while the
    writer is imported, and put back: the user's own import of them still works afterwards."""
    import subprocess
    import sys

    code = ("import sys, importlib.util\n"
            "from wganlab.observe.tensorboard import require_tensorboard\n"
            "require_tensorboard()\n"
            "assert 'torch.utils.tensorboard' in sys.modules\n"
            "for name in ('boto3', 'fsspec'):\n"
            "    assert name not in sys.modules, name\n"
            "    if importlib.util.find_spec(name) is not None:\n"
            "        __import__(name)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
