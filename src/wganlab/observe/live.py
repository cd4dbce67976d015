"""The live view: a page on 127.0.0.1 that shows a 2D run as it trains, updated every second.

What it draws (the view GAN Lab gives in the browser, here for any objective of ours):

* the real data (grey points) and the generator's samples (orange);
* the critic's value f(x) as a heat map (red high, blue low);
* the generator's gradient arrows: at each sample point x, -d loss_G / d x, the direction in
  which the generator's next update pushes that sample (for the Wasserstein loss, up the
  critic's slope);
* the training curves (losses, the critic's W1 estimate, the exact W1 at evaluations).

:class:`LiveView` is a Trainer callback. At every train line (``log_every`` steps) it computes
one snapshot in the training thread (one generator forward on 500 points, one critic forward
on a 48 x 48 grid, one backward on 150 points) and swaps the encoded JSON under a lock; the
server threads only read those bytes. The standard library's HTTP server serves it; the curves
are drawn by the vendored uPlot (``static/uplot``, MIT), the field by plain canvas code.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files

import torch

from wganlab.core.packing import score_points
from wganlab.metrics.headline import headline_of

HOST = "127.0.0.1"  # never another interface: the page exposes the run to whoever can reach it
MAX_CURVE_POINTS = 2000  # longer histories are thinned before they are sent

_FILES = {
    "/": ("live.html", "text/html; charset=utf-8"),
    "/uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript"),
    "/uPlot.min.css": ("uplot/uPlot.min.css", "text/css"),
}


def _rounded(tensor: torch.Tensor, digits: int = 4) -> list:
    return torch.round(tensor.detach().float().cpu(), decimals=digits).tolist()


def generator_push(trainer, points: torch.Tensor) -> torch.Tensor:
    """-d loss_G / d x at each of ``points`` (N, 2) -> (N, 2): where the generator moves them.

    ``loss_G`` is the objective's generator loss as the trainer uses it (a mean over the
    batch), times N, so each arrow is the push on one sample. Only ``points`` get a
    gradient; no parameter ``.grad`` changes.
    """
    x = points.detach().clone().requires_grad_(True)
    with torch.enable_grad(), trainer.measured_critic() as critic:
        loss = trainer.objective.generator(score_points(critic, x)) * len(x)
        (gradient,) = torch.autograd.grad(loss, x)
    return -gradient


class LiveView:
    """Serves the live page while a Trainer runs (use as a callback; 2-D data only).

    Args:
        port: TCP port on 127.0.0.1; 0 picks a free one (see :attr:`url`).
        points: generated (and real) points drawn.
        arrows: samples that get a gradient arrow.
        resolution: heat-map cells per side.
    """

    def __init__(self, port: int = 0, points: int = 500, arrows: int = 150, resolution: int = 48):
        self.points, self.arrows, self.resolution = points, arrows, resolution
        self._lock = threading.Lock()
        self._state = json.dumps({"status": "waiting", "step": 0}).encode()
        self.state_requests = 0  # how many times a page asked for the state (tests read it)
        self._curves: dict[str, list] = {"step": [], "d_loss": [], "g_loss": [], "w_estimate": []}
        self._evals: dict[str, list] = {"step": [], "w1": []}
        self._last_eval: dict = {}
        self._findings: list[dict] = []  # the doctor's, as they come
        self._field: dict = {}
        self._bounds = None
        self._server = ThreadingHTTPServer((HOST, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="wganlab-live", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def start(self) -> "LiveView":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LiveView":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- Trainer callback (runs in the training thread) ------------------------------------------
    def on_record(self, trainer, record: dict) -> None:
        if record["kind"] == "train":
            for key in self._curves:
                self._curves[key].append(record.get(key))
            self._field = self.snapshot(trainer)
            self._publish(trainer, "training")
        elif record["kind"] == "finding":  # the doctor's, emitted through the trainer
            self._findings.append({k: record[k] for k in ("detector", "step", "severity", "title")})
            self._publish(trainer, "training")
        elif record["kind"] == "eval":
            self._evals["step"].append(record["step"])
            self._evals["w1"].append(record.get("w1"))
            self._last_eval = {k: v for k, v in headline_of(record, ("modes_captured", "n_modes",
                                                                       "high_quality_fraction", "w1")).items()
                               if v is not None}
            self._publish(trainer, "training")

    def on_end(self, trainer, summary: dict) -> None:
        self._field = self.snapshot(trainer)
        self._publish(trainer, "finished")

    # -- the snapshot ---------------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, trainer) -> dict:
        """Real and generated points, the critic on a grid, and the generator's push arrows."""
        if trainer.dataset.dim != 2:
            raise ValueError(f"the live view draws 2-D data; this data is {trainer.dataset.dim}-dimensional")
        real = trainer.held_real[: self.points]
        if self._bounds is None:  # fixed from the real data, so the view does not jump
            low, high = real.min(0).values.cpu(), real.max(0).values.cpu()
            centre, half = (low + high) / 2, float((high - low).max()) * 0.5 * 1.35 + 1e-3
            self._bounds = [float(centre[0] - half), float(centre[0] + half),
                            float(centre[1] - half), float(centre[1] + half)]
        x0, x1, y0, y1 = self._bounds
        fake = trainer.generate(trainer.held_z[: self.points])
        xs = torch.linspace(x0, x1, self.resolution)
        ys = torch.linspace(y1, y0, self.resolution)  # row 0 is the top of the picture
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2).to(trainer.held_real.device)
        with trainer.measured_critic() as critic:
            heat = score_points(critic, grid).reshape(self.resolution, self.resolution)
        push = generator_push(trainer, fake[: self.arrows])
        return {"bounds": self._bounds, "real": _rounded(real), "fake": _rounded(fake),
                "heat": _rounded(heat), "arrows": _rounded(push)}

    def _publish(self, trainer, status: str) -> None:
        stride = max(1, -(-len(self._curves["step"]) // MAX_CURVE_POINTS))
        state = {
            "status": status, "step": trainer.step, "steps": trainer.config.steps,
            "preset": trainer.config.preset, "objective": trainer.config.objective,
            "constraint": trainer.config.constraint, "data": getattr(trainer.dataset, "name", trainer.config.data),
            "last_train": {k: trainer.last_train.get(k) for k in ("d_loss", "g_loss", "w_estimate")}
            if trainer.last_train else {},
            "last_eval": self._last_eval,
            "curves": {k: v[::stride] for k, v in self._curves.items()},
            "evals": self._evals,
            "findings": self._findings,
            **self._field,
        }
        encoded = json.dumps(state).encode()
        with self._lock:
            self._state = encoded

    def state_bytes(self, count: bool = False) -> bytes:
        with self._lock:
            self.state_requests += count
            return self._state

    # -- HTTP ------------------------------------------------------------------------------------
    def _handler(self):
        view = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                path = self.path.split("?", 1)[0]
                if path == "/state.json":
                    self._send(view.state_bytes(count=True), "application/json")
                elif path in _FILES:
                    name, kind = _FILES[path]
                    self._send(files("wganlab").joinpath("static", name).read_bytes(), kind)
                else:
                    self.send_error(404)

            def _send(self, body: bytes, kind: str):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # no line per request on the terminal
                pass

        return Handler
