"""The layout: layers whose imports point down, no circles, the old module paths, and runs
that compute what the flat layout's main computed (stored references in tests/fixtures/, and the
flat commit itself, run here, for the long runs)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import import_graph  # noqa: E402  (tests/import_graph.py)

from wganlab import _aliases  # noqa: E402
from wganlab.cli import main  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def test_every_module_sits_in_a_layer_and_imports_only_downwards():
    edges = import_graph.graph()
    outside = [m for m in edges if import_graph.layer_of(m) is None and m not in ("wganlab", "wganlab._aliases")]
    assert outside == []
    assert import_graph.upward_imports(edges) == []


def test_the_layer_check_sees_a_function_local_back_import(tmp_path, monkeypatch):
    # the same check on a copy of core/nets.py with an import of the trainer inside a function
    edges = import_graph.graph()
    edges["wganlab.core.nets"] = edges["wganlab.core.nets"] | {"wganlab.training.loop"}
    assert ("wganlab.core.nets", "wganlab.training.loop") in import_graph.upward_imports(edges)
    source = "def f():\n    from wganlab.training.loop import Trainer\n"
    file = tmp_path / "probe.py"
    file.write_text(source)
    found = import_graph.imports("wganlab.core.probe", file, import_graph.modules())
    assert found == {"wganlab.training.loop"}


def test_no_import_circles_counting_function_local_imports():
    assert import_graph.cycles(import_graph.graph()) == []
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lint_imports_keeps_the_layers_contract():
    tool = shutil.which("lint-imports")
    if tool is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([tool], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_old_module_paths_import_the_moved_modules():
    for old, new in _aliases.OLD_PATHS.items():
        assert importlib.import_module(old) is importlib.import_module(new)
    from wganlab.metrics import evaluate_toy  # the old wganlab.metrics module's names
    from wganlab.metrics.toy import evaluate_toy as moved

    assert evaluate_toy is moved


def test_nothing_inside_the_package_imports_an_old_path():
    import ast

    offenders = []
    for name, path in import_graph.modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [(name, t) for t in targets if t in _aliases.OLD_PATHS]
    assert offenders == []


def test_no_module_over_400_lines():
    long = {name: n for name, path in import_graph.modules().items()
            if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


FLAT_COMMIT = "4d72b9f"  # main before the layout move
ROOT = Path(__file__).resolve().parents[2]


def _records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row.pop("time", None)  # wall time, the one thing allowed to change
    return rows


def _same_records(new: list[dict], old: list[dict], rel: float = 0.0, w1_rel: float = 1e-7) -> None:
    """Same records; with rel > 0, floats within that relative tolerance (another CPU rounds differently).
    The exact W1 to ``w1_rel`` always: it is solved from the real data's side since the start-up work of
    issue 16 (the same optimum, summed in another order: ~1e-9 relative measured)."""
    assert [r["kind"] for r in new] == [r["kind"] for r in old]
    for a, b in zip(new, old):
        assert set(a) == set(b), (a["kind"], a["step"], set(a) ^ set(b))
        differ = {k: (a[k], b[k]) for k in a
                  if not (a[k] == b[k] or (k == "w1" and abs(a[k] - b[k]) <= w1_rel * abs(b[k]))
                          or (rel and isinstance(a[k], float) and isinstance(b[k], (int, float))
                                  and abs(a[k] - b[k]) <= rel * max(abs(b[k]), 1e-2)))}
        assert differ == {}, (a["kind"], a["step"], differ)


# The stored references were written on one Xeon; on a second one (another vector unit) the flat
# commit itself gives floats that differ by up to 3.7e-6 relative after 60 steps (measured), so the
# short runs compare floats to 1e-4 and everything else exactly. A change in what is computed moves
# them by far more: the penalty weight 0.1 -> 0.1001 alone moves default-60 by 12% (measured).
SHORT_RUNS = {
    "default-60": ["--steps", "60", "--log-every", "10", "--eval-every", "30"],
    "wgan-grid25-40": ["--preset", "wgan", "--data", "grid25", "--steps", "40", "--hidden", "64",
                       "--log-every", "10", "--eval-every", "20"],
}
# Long runs amplify rounding (3,000 steps on the two Xeons: 17 vs 15 modes), so they are compared
# bit for bit against the flat commit run here, on this machine, from a git worktree.
FULL_RUNS = {"default-full": ["--preset", "wgan-gp-2d"], "wgan-grid25-300": ["--preset", "wgan", "--data", "grid25", "--steps", "300"]}


@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_short_runs_compute_what_the_flat_layout_computed(name, tmp_path, capsys):
    out = tmp_path / name
    args = SHORT_RUNS[name] + ["--eval-samples", "500", "--w1-samples", "500", "--threads", "2", "--logger", "jsonl"]
    assert main(["train", "--seed", "0", "--no-progress", "--out", str(out), *args]) == 0
    _same_records(_records(out / "metrics.jsonl"), _records(DATA / "reference" / f"{name}.jsonl"), rel=1e-4)


def test_pack_1_computes_what_the_flat_layout_computed(tmp_path):
    # packing (PacGAN) with m = 1 is today's run: the stored reference, from before packing existed
    out = tmp_path / "pack1"
    args = SHORT_RUNS["default-60"] + ["--eval-samples", "500", "--w1-samples", "500", "--threads", "2",
                                       "--logger", "jsonl", "--pack", "1"]
    assert main(["train", "--seed", "0", "--no-progress", "--out", str(out), *args]) == 0
    _same_records(_records(out / "metrics.jsonl"), _records(DATA / "reference" / "default-60.jsonl"), rel=1e-4)


def _train(tree: Path, out: Path, args: list[str]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run([sys.executable, "-m", "wganlab", "train", "--seed", "0", "--no-progress", "--out", str(out),
                           *args], capture_output=True, text=True, cwd=tree, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return _records(out / "metrics.jsonl")


@pytest.fixture(scope="module")
def flat_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("flat") / "tree"
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), FLAT_COMMIT],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no git history to check out {FLAT_COMMIT}: {made.stderr.strip()}")
    yield tree
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


@pytest.mark.skipif(not os.environ.get("WGANLAB_FULL_REFERENCE"), reason="a minute each: WGANLAB_FULL_REFERENCE=1")
@pytest.mark.parametrize("name", sorted(FULL_RUNS))
def test_full_runs_compute_bit_for_bit_what_the_flat_layout_computes_here(name, tmp_path, flat_tree):
    _same_records(_train(ROOT, tmp_path / "new", FULL_RUNS[name]), _train(flat_tree, tmp_path / "flat", FULL_RUNS[name]))


def test_a_checkpoint_of_the_flat_layout_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(DATA / "premove_run", run)
    written_then = _records(run / "metrics.jsonl")
    assert main(["train", "--resume", str(run), "--no-progress", "--threads", "2"]) == 0
    _same_records(_records(run / "metrics.jsonl"), written_then, rel=1e-4)
