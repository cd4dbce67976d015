import pytest

from wganlab.runs.folder import RunFolder, RunFolderError, atomic_write_bytes, next_run_dir


def test_atomic_write_keeps_the_old_content_when_writing_fails(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"good")

    with pytest.raises(TypeError):  # the write itself fails, half-way through the protocol
        atomic_write_bytes(target, "text where bytes belong")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind


def test_run_dirs_are_numbered_past_the_highest(tmp_path):
    assert next_run_dir(tmp_path / "none", "x").name == "00000-x"
    (tmp_path / "00000-a").mkdir()
    (tmp_path / "00007-b").mkdir()
    (tmp_path / "notes").mkdir()
    assert next_run_dir(tmp_path, "wgan-ring8").name == "00008-wgan-ring8"


def test_create_refuses_a_file_and_an_occupied_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder.create(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert RunFolder.create(tmp_path / "empty").path.is_dir()  # an empty folder is fine


def test_damaged_config_and_metrics_are_handled(tmp_path):
    run = RunFolder.create(tmp_path / "run")
    (run.path / "config.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="damaged"):
        run.read_config()
    run.append_metrics({"step": 1})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 2, "d_lo')
    assert run.read_metrics() == [{"step": 1}]


@pytest.mark.parametrize("data", ["ring8", "digits"])
def test_run_names_cover_every_file_a_run_writes(tmp_path, data):
    """--overwrite moves only RUN_NAMES: a name a run writes that is missing there would stay behind."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from wganlab.cli import main
    from wganlab.runs.folder import is_run_name

    out = tmp_path / "run"
    argv = ["train", "--data", data, "--steps", "2", "--eval-every", "2", "--hidden", "8", "--depth", "1",
            "--batch-size", "16", "--eval-samples", "100", "--w1-samples", "50", "--no-progress", "--logger", "both",
            "--out", str(out)]
    with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    names = sorted(entry.name for entry in out.iterdir())
    assert len(names) >= 8
    assert [name for name in names if not is_run_name(name)] == []
    assert not is_run_name("thesis.tex") and not is_run_name("photo.png")
