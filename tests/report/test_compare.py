import json
import re

import pytest

from wganlab.api import train_run
from wganlab.cli import main
from wganlab.config import resolve

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=300, w1_samples=200, log_every=2, eval_every=3,
            steps=6, logger="jsonl")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    folders = [root / "gp-seed0", root / "wgan-seed1"]
    train_run(resolve(None, dict(TINY, seed=0)), folders[0])
    train_run(resolve("wgan", dict(TINY, seed=1)), folders[1])
    return folders


def test_compare_page_holds_every_run_and_highlights_the_best(runs, tmp_path, capsys):
    out = tmp_path / "cmp.html"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    page = out.read_text()
    for folder in runs:
        assert page.count(folder.name) >= 3, folder.name  # listing, metric columns, sample panel
    # one curves image plus one sample panel per run, all inline
    assert page.count("src='data:image/png;base64,") == 1 + len(runs)
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)  # self-contained: nothing fetched
    # the exact-W1 row: the highlighted cell is the smaller of the two summaries
    w1 = [json.loads((f / "summary.json").read_text())["w1"] for f in runs]
    row = re.search(r"<tr><th>w1 \(lower is better\)</th>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td( class='best')?>([^<]*)</td>", row)
    assert [float(text) for _, text in cells] == pytest.approx(w1, rel=1e-3)
    assert [bool(best) for best, _ in cells] == [v == min(w1) for v in w1]
    # the config keys that differ include the seed and the preset, not the unchanged ones
    differing = page.split("Config keys that differ")[1]
    assert ">seed<" in differing and ">preset<" in differing and ">batch_size<" not in differing


def test_compare_refuses_what_is_not_a_run(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0]), str(tmp_path / "missing"), "--out", str(tmp_path / "c.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["compare", str(runs[0]), str(tmp_path), "--out", str(tmp_path / "c.html")]) == 2
    assert "not a wganlab run folder" in capsys.readouterr().err
    assert not (tmp_path / "c.html").exists()
