import json
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
import torch

from wganlab.config import resolve
from wganlab.observe.live import HOST, LiveView, generator_push
from wganlab.training.loop import Trainer

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=300, w1_samples=200, log_every=5, eval_every=10,
            steps=20)


@pytest.fixture(scope="module")
def trained_view():
    """A finished tiny run whose live view is still being served."""
    view = LiveView(port=0, points=300, arrows=50, resolution=24).start()
    trainer = Trainer(resolve(None, TINY), callbacks=[view])
    trainer.train()
    yield view, trainer
    view.stop()


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_generator_push_is_minus_the_generator_loss_gradient():
    trainer = Trainer(resolve(None, dict(TINY, steps=1)))
    points = torch.randn(9, 2)
    # Wasserstein: loss_G = -mean f(x), so each sample is pushed along +grad f(x)
    x = points.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(trainer.critic(x).sum(), x)
    torch.testing.assert_close(generator_push(trainer, points), expected)
    assert all(p.grad is None for p in trainer.critic.parameters())
    # non-saturating: loss_G = mean softplus(-f(x)), push = sigmoid(-f(x)) grad f(x)
    trainer = Trainer(resolve(None, dict(TINY, steps=1, objective="non-saturating")))
    x = points.clone().requires_grad_(True)
    scores = trainer.critic(x)
    (grad_f,) = torch.autograd.grad(scores.sum(), x)
    torch.testing.assert_close(generator_push(trainer, points), torch.sigmoid(-scores.detach()) * grad_f)


def test_state_holds_the_field_and_the_curves(trained_view):
    view, trainer = trained_view
    assert view.url.startswith(f"http://{HOST}:") and view._server.server_address[0] == "127.0.0.1"
    state = json.loads(_get(view.url + "state.json"))
    assert state["status"] == "finished" and state["step"] == 20
    assert np.shape(state["fake"]) == (300, 2) and np.shape(state["real"]) == (300, 2)
    assert np.shape(state["heat"]) == (24, 24) and np.shape(state["arrows"]) == (50, 2)
    assert state["curves"]["step"] == [5, 10, 15, 20] and state["evals"]["step"] == [10, 20]
    assert state["curves"]["d_loss"][-1] == pytest.approx(trainer.last_train["d_loss"])
    # the heat map is the critic on the grid: its corner is f at the top-left of the bounds
    x0, x1, y0, y1 = state["bounds"]
    with torch.no_grad():
        corner = float(trainer.critic(torch.tensor([[x0, y1]])))
    assert state["heat"][0][0] == pytest.approx(corner, abs=1e-3)
    page = _get(view.url).decode()
    assert "/uPlot.iife.min.js" in page and len(_get(view.url + "uPlot.iife.min.js")) > 40_000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_headless_browser_renders_the_live_data(trained_view, tmp_path):
    view, trainer = trained_view
    before = view.state_requests
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--virtual-time-budget=3000", "--window-size=1100,720"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", view.url], capture_output=True, text=True,
                         timeout=120).stdout
    assert '<span id="step">20</span>' in dom
    assert '<td id="drawn">600</td>' in dom  # 300 real + 300 generated points on the canvas
    assert '<td id="status">finished</td>' in dom
    assert 'class="uplot' in dom  # the curves were drawn by the vendored library
    assert view.state_requests - before >= 2  # the page polls (every second)
    shot = tmp_path / "live.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", view.url], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 500  # a heat map, points and curves, not a blank page


def test_observers_do_not_change_the_run(tmp_path):
    from wganlab.observe.tensorboard import TensorBoardLogger

    def history(callbacks):
        trainer = Trainer(resolve(None, dict(TINY, steps=10)), callbacks=callbacks)
        trainer.train()
        return [{k: v for k, v in r.items() if k != "time"} for r in trainer.history]

    with LiveView(port=0, points=100, arrows=20, resolution=8) as view:
        watched = history([view, TensorBoardLogger(tmp_path)])
    assert watched == history([])
