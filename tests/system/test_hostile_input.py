"""Property: whatever configs and files a user throws at the CLI, the answer is exit 0 or one
clear error line with exit 2; never a traceback, never a damaged run folder."""

import io
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wganlab.cli import main
from wganlab.config import TrainConfig

KEYS = [f.replace("_", "-") for f in TrainConfig.__dataclass_fields__] + ["lr", "bogus", "", "steps=", "=="]
VALUES = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["nan", "inf", "-1", "0", "true", "cuda:9", "ring8", "", "none", "1e309"]),
                   st.text(max_size=12))
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _assert_clean_refusal_or_success(code: int, err: str):
    assert "Traceback" not in err
    if code != 0:
        assert code == 2, err
        assert err.startswith("wganlab: error: ") and err.count("\n") == 1, err


def _snapshot(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_random_set_overrides_are_accepted_or_refused_in_one_line(pairs):
    argv = ["train", "--dry-run"] + [x for key, value in pairs for x in ("--set", f"{key}={value}")]
    _assert_clean_refusal_or_success(*_run(argv))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(KEYS[:-4]), VALUES), max_size=4))
def test_random_flags_are_accepted_or_refused_in_one_line(pairs):
    argv = ["train", "--dry-run"] + [x for key, value in pairs for x in (f"--{key}", value)]
    _assert_clean_refusal_or_success(*_run(argv))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_random_toml_files_are_refused_in_one_line(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_bytes(content)
        _assert_clean_refusal_or_success(*_run(["train", "--dry-run", "--config", str(path)]))


@SETTINGS
@given(st.binary(max_size=400), st.booleans())
def test_random_sample_files_are_refused_in_one_line(content, npy_header):
    if npy_header:  # a real header over random payload: the subtler damage
        content = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (50, 2), }" + \
                  b" " * 50 + b"\n" + content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.npy"
        path.write_bytes(content)
        _assert_clean_refusal_or_success(*_run(["eval", "--data", "ring8", "--samples", str(path)]))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    code, err = _run(["train", "--steps", "2", "--eval-every", "2", "--hidden", "8", "--depth", "1",
                      "--batch-size", "16", "--eval-samples", "100", "--w1-samples", "50", "--no-progress",
                      "--out", str(out)])
    assert code == 0, err
    return out


@settings(SETTINGS, max_examples=30)
@given(file=st.sampled_from(["checkpoint", "config.json", "generator.safetensors"]),
       damage=st.sampled_from(["truncate", "random", "flip", "empty"]), data=st.data())
def test_damaged_run_files_are_refused_in_one_line_and_the_folder_is_untouched(finished_run, file, damage, data):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(finished_run, run)
        target = next((run / "checkpoints").glob("*.pt")) if file == "checkpoint" else run / file
        original = target.read_bytes()
        if damage == "truncate":
            content = original[: data.draw(st.integers(0, max(len(original) - 1, 0)))]
        elif damage == "random":
            content = data.draw(st.binary(min_size=1, max_size=500))
        elif damage == "flip":
            position = data.draw(st.integers(0, len(original) - 1))
            content = original[:position] + bytes([original[position] ^ 0xFF]) + original[position + 1:]
        else:
            content = b""
        target.write_bytes(content)
        before = _snapshot(run)
        for argv in (["train", "--resume", str(run), "--steps", "3", "--no-progress"],
                     ["sample", "--run", str(run), "--n", "5", "--out", str(Path(tmp) / "s.npy")]):
            code, err = _run(argv)
            _assert_clean_refusal_or_success(code, err)
            if code == 0:
                # a flipped byte inside a float can still load: then the output must be usable,
                # and resuming may extend the run; only a refusal must leave it untouched
                continue
            assert _snapshot(run) == before, argv


def test_a_checkpoint_with_a_damaged_python_rng_state_is_refused_in_one_line(finished_run, tmp_path):
    """The flipped byte hypothesis found: a negative word in the saved random.getstate()."""
    import torch

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    path = next((run / "checkpoints").glob("*.pt"))
    state = torch.load(path, weights_only=False)
    version, words, gauss = state["python_rng"]
    state["python_rng"] = (version, (words[0], -3, *words[2:]), gauss)
    torch.save(state, path)
    before = _snapshot(run)
    code, err = _run(["train", "--resume", str(run), "--steps", "3", "--no-progress"])
    _assert_clean_refusal_or_success(code, err)
    assert code == 2 and "checkpoint" in err
    assert _snapshot(run) == before


ARRAY_SHAPES = [(40,), (40, 2), (40, 3), (1, 2), (40, 28, 28), (40, 12, 12, 3), (40, 2, 9, 9), (40, 5, 5, 5, 5), (0, 2)]


@settings(SETTINGS, max_examples=15)
@given(shape=st.sampled_from(ARRAY_SHAPES), dtype=st.sampled_from(["float32", "float64", "uint8", "bool"]),
       poison=st.sampled_from([None, "nan", "inf"]), suffix=st.sampled_from([".npy", ".npz"]),
       net=st.sampled_from(["auto", "mlp", "conv"]))
def test_user_data_files_train_or_are_refused_before_the_run_folder_exists(shape, dtype, poison, suffix, net):
    import numpy as np

    array = np.random.default_rng(0).uniform(-1, 1, size=shape)
    if poison and array.size and dtype.startswith("float"):
        array.reshape(-1)[0] = float(poison)
    array = array.astype(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / f"data{suffix}"
        if suffix == ".npy":
            np.save(data, array)
        else:
            np.savez(data, images=array, extra=array)
        out = Path(tmp) / "run"
        code, err = _run(["train", "--data", str(data), "--set", f"net={net}", "--steps", "1", "--batch-size", "4",
                          "--hidden", "8", "--depth", "1", "--eval-samples", "8", "--w1-samples", "8",
                          "--log-every", "1", "--no-progress", "--logger", "jsonl", "--no-doctor", "--out", str(out)])
        _assert_clean_refusal_or_success(code, err)
        if code != 0:
            assert not out.exists(), err  # refused before anything was written
