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
