"""Every shipped preset runs as a user runs it: two steps through `wganlab train`, evaluated at
each, writing its whole default run folder (TensorBoard, report, doctor, checkpoint). Sizes are
cut to seconds. The held-out set stays the preset's (a PacGAN3 run once stopped at its first
evaluation: TensorBoard's 512 gradient-norm points of its 600 held-out ones split into no packs
of 3); batch and sample counts are multiples of 2, 3 and 4, as every PacGAN pack size needs."""

import json

import pytest

from wganlab.cli import main
from wganlab.config import PRESETS
from wganlab.data.mnist import mnist_available

TINY = ["--steps", "2", "--eval-every", "1", "--log-every", "1", "--batch-size", "24",
        "--eval-samples", "120", "--w1-samples", "120", "--no-progress"]
FILES = ("config.json", "metrics.jsonl", "summary.json", "report.html", "generator.safetensors", "samples.npy")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_evaluates_and_writes_its_run_folder(preset, tmp_path, capsys):
    if PRESETS[preset].get("data", "").endswith("mnist") and not mnist_available():
        pytest.skip("needs MNIST: wganlab data fetch mnist")
    sizes = [] if PRESETS[preset].get("net") == "conv" else ["--hidden", "16"]
    out = tmp_path / "run"
    assert main(["train", "--preset", preset, *TINY, *sizes, "--out", str(out)]) == 0, capsys.readouterr().err
    for name in FILES:
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [1, 2]
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
