import json

from wganlab.api import train_run
from wganlab.config import resolve
from wganlab.report.run import write_report

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=300, w1_samples=200, log_every=2, eval_every=2, steps=4)


def test_report_is_rebuilt_from_the_run_folder_alone(tmp_path):
    run = tmp_path / "run"
    summary = train_run(resolve(None, TINY), run)
    for name in ("report.html", "samples.png", "curves.png"):
        (run / name).unlink()
    write_report(run)
    html = (run / "report.html").read_text()
    assert (run / "samples.png").stat().st_size > 10_000 and (run / "curves.png").stat().st_size > 10_000
    assert html.count("data:image/png;base64,") == 2
    assert f"{summary['w1']:.4g}" in html  # the final metrics table
    assert json.loads((run / "config.json").read_text())["steps"] == 4


def test_report_of_a_run_that_never_finished_says_so(tmp_path):
    run = tmp_path / "run"
    train_run(resolve(None, TINY), run)
    (run / "summary.json").unlink()
    (run / "samples.npy").unlink()
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "step": 5, "d_lo')  # a line cut short by a kill
    html = write_report(run).read_text()
    assert "the run did not finish" in html and html.count("data:image/png;base64,") == 1


def test_samples_picture_drawn_ahead_is_the_one_the_report_draws(tmp_path):
    """The run draws samples.png at its final evaluation (beside the W1 solve); the report rebuilt
    from the folder draws the same bytes, and no picture under its .tmp name is left."""
    from wganlab.report.run import AHEAD_PNG

    run = tmp_path / "run"
    train_run(resolve(None, TINY), run)
    ahead = (run / "samples.png").read_bytes()
    assert not (run / AHEAD_PNG).exists()
    (run / "samples.png").unlink()
    write_report(run)
    assert (run / "samples.png").read_bytes() == ahead


def test_samples_ahead_is_dropped_when_the_nets_change_after_it(tmp_path):
    import torch

    from wganlab.report.run import AHEAD_PNG, SamplesAhead
    from wganlab.training.loop import Trainer

    trainer = Trainer(resolve(None, TINY))
    trainer.train()
    ahead = SamplesAhead(tmp_path)
    ahead.before_eval(trainer)
    samples, surface, picture = ahead.take(trainer)  # nothing changed: handed over
    assert samples.shape == (300, 2) and surface[2].shape == (100, 100)
    picture.result()
    assert (tmp_path / AHEAD_PNG).stat().st_size > 10_000
    ahead.before_eval(trainer)
    with torch.no_grad():
        next(trainer.critic.parameters()).add_(1.0)  # an update after the final evaluation
    assert ahead.take(trainer) is None
    assert not (tmp_path / AHEAD_PNG).exists()
    trainer.step -= 1
    ahead.before_eval(trainer)  # not the final step: nothing drawn
    assert ahead.take(trainer) is None
