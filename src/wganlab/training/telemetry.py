"""What a run measures as it goes: statistics summed on the device between log lines, the
train and eval records, the critic's own Wasserstein estimate, the final summary.

:class:`Telemetry` is that part of the :class:`~wganlab.training.loop.Trainer`; every record
leaves through :meth:`Telemetry.emit`, which appends it to ``metrics.jsonl`` and hands it to
every callback (the doctor's findings go the same way).
"""

from __future__ import annotations

import contextlib
import math

import torch

from wganlab.core.constraints import critic_input_gradient_norms
from wganlab.core.packing import pack_samples, score_points, whole_packs
from wganlab.metrics.headline import BY_KEY, headline_of
from wganlab.metrics.toy import evaluate_toy_pending
from wganlab.training.state import NonFiniteError


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Telemetry:
    """The measuring part of a :class:`~wganlab.training.loop.Trainer` (a mixin)."""

    @contextlib.contextmanager
    def measured_critic(self):
        """The critic in eval mode while it is measured, then back: a spectrally normalised
        critic's power iteration (it updates its ``_u``/``_v`` buffers in place on each forward in
        training mode) then runs in training steps only, so how often a run logs, evaluates or
        draws never changes what it trains."""
        critic, was_training = self.critic, self.critic.training
        critic.eval()
        try:
            yield critic
        finally:
            critic.train(was_training)

    def _accumulate(self, stats: dict) -> None:
        for key, value in stats.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def _postfix(self, record: dict) -> dict:
        shown = {}
        if "w_estimate" in record:
            shown["W"] = f"{record['w_estimate']:.3f}"
        for key, value in headline_of(self.last_eval or {}).items():
            metric = BY_KEY[key]
            if metric.short and value is not None:
                shown[metric.short] = f"{value}/{self.last_eval['n_modes']}" if key == "modes_captured" \
                    else metric.format(value)
        return shown

    def _log_train(self) -> dict:
        # The interval's statistics (each the mean over the critic or generator steps since the
        # last line), the current gradient norms and a parameter finiteness flag come to the
        # host in one read.
        sums, counts = self._sums, self._counts
        means = {name: sums[name].float().reshape(()) / counts[name] for name in sums}
        means["grad_norm_g"] = _grad_norm(self.generator).to(self.device)
        means["grad_norm_d"] = _grad_norm(self.critic).to(self.device)
        params = [p for net in (self.generator, self.critic) for p in net.parameters()]
        means["params_finite"] = torch.stack([torch.isfinite(p).all() for p in params]).all().float()
        means.update(self._diagnostics())
        values = torch.stack(list(means.values())).cpu()
        self._sums, self._counts = {}, {}
        record = {"kind": "train", "step": self.step, "time": round(self.elapsed, 3)}
        record.update(zip(means, values.tolist()))
        params_finite = record.pop("params_finite")
        record["w_estimate"] = self.wasserstein_estimate()
        record["lr_g"] = self.opt_g.param_groups[0]["lr"]
        self.emit(record)  # before the check: the non-finite line is evidence for the doctor
        if not params_finite:
            raise NonFiniteError(f"a parameter became NaN or Inf by step {self.step}; lower the learning rates "
                                 f"(--lr-g/--lr-d) or use a Lipschitz constraint")
        for name in ("d_loss", "g_loss", "w_estimate"):
            if not math.isfinite(record[name]):
                raise NonFiniteError(f"{name} became {record[name]} at step {self.step}; lower the learning rates "
                                     f"(--lr-g/--lr-d) or use a Lipschitz constraint")
        self.last_train = record
        return record

    def _diagnostics(self, n: int = 256) -> dict:
        """Device tensors the doctor reads, measured on fixed held-out points once per log line:
        parameter norms, the generated samples' spread relative to the data's (mean pairwise
        distance ratio; ~1 healthy, -> 0 under collapse) and the critic's input-gradient norms at
        real-fake interpolates (the share above 1.5 shows a Lipschitz violation)."""
        n = min(n, len(self.held_real))  # config.held_out may be smaller
        real = self.held_real[:n]
        fake = self.generate(self.held_z[:n])
        stats = {
            "param_norm_g": torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in self.generator.parameters()])),
            "param_norm_d": torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in self.critic.parameters()])),
            "sample_spread": torch.pdist(fake.flatten(1)).mean() / torch.pdist(real.flatten(1)).mean().clamp_min(1e-12),
        }
        # Fixed interpolation weights: the measurement must not draw from the training stream. Under
        # packing the norms are taken at packed interpolates, as the penalty takes them.
        pack = self.config.pack
        if pack > 1:
            keep = whole_packs(n, pack)
            real, fake, n = pack_samples(real[:keep], pack), pack_samples(fake[:keep], pack), keep // pack
        eps = torch.rand(n, *([1] * (real.dim() - 1)), generator=torch.Generator().manual_seed(self.config.seed))
        points = (eps.to(self.device) * real + (1 - eps.to(self.device)) * fake).requires_grad_(True)
        with torch.enable_grad(), self.measured_critic() as critic:
            norms = critic_input_gradient_norms(critic, points, create_graph=False)
        stats["input_grad_norm"] = norms.mean()
        stats["lipschitz_over_1_5"] = (norms > 1.5).float().mean()
        return stats

    def _log_eval(self) -> dict:
        scoring = self.start_evaluation()
        for callback in self.callbacks:  # pictures of the state evaluated, drawn while its W1 is solved
            if hasattr(callback, "before_eval"):
                callback.before_eval(self)
        result = scoring()
        record = {"kind": "eval", "step": self.step, "time": round(self.elapsed, 3), **result}
        self.emit(record)
        return result

    def emit(self, record: dict) -> None:
        """Appends ``record`` to the history and ``metrics.jsonl`` (rank 0) and hands it to every callback."""
        self.history.append(record)
        if self.run is not None and self.rank == 0:
            self.run.append_metrics(record)
        for callback in self.callbacks:
            if hasattr(callback, "on_record"):
                callback.on_record(self, record)

    def summary(self) -> dict:
        final = dict(self.last_eval or self.evaluate())
        if self.last_train is not None:
            final["w_estimate"] = self.last_train["w_estimate"]
        final.update(steps=self.step, wall_seconds=round(self.elapsed, 2), preset=self.config.preset,
                     data=self.config.data, seed=self.config.seed)
        if self.stop_reason is not None:
            final["stopped"] = self.stop_reason
        return final

    @torch.no_grad()
    def wasserstein_estimate(self) -> float:
        """E f(x) - E f(G(z)) on the fixed held-out batch: the critic's own W1 estimate."""
        fake = self.generate(self.held_z)
        with self.measured_critic() as critic:
            return float(critic(self.held_real).mean() - critic(fake).mean())

    def evaluate(self) -> dict:
        return self.start_evaluation()()

    def start_evaluation(self):
        """Starts the evaluation of the current state; the function returned gives its metrics.
        On toy data the exact W1 is solved in the transport side process (where it runs) until
        then, so the caller's work in between (pictures, histograms) costs no wall time."""
        samples = self.sample(self.config.eval_samples, seed=self.config.seed)
        if not torch.isfinite(samples).all():
            raise NonFiniteError(f"the generator produced NaN/Inf samples at step {self.step}")
        if self.dataset.kind == "image":
            from wganlab.metrics.images import evaluate_images

            result = evaluate_images(samples, self.dataset, seed=self.config.seed)
            return lambda: result
        # mode_counts stays in: modes visited over time (mode hopping) is read from it
        return evaluate_toy_pending(samples, self.dataset, n_real=self.config.w1_samples, seed=self.config.seed)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, *shape) samples of the reported generator from a seeded noise draw, on the CPU.

        The draws are kept until the reported generator changes (tensor versions): the final
        evaluation, TensorBoard and the run folder's ``samples.npy`` ask for the same ``eval_samples``
        (10,000 stacked-MNIST images through the conv generator: ~3 s on 2 cores, once now)."""
        net = self.sampler
        state = (self.step, id(net), tuple(t._version for t in net.state_dict().values()))
        kept = getattr(self, "_samples_kept", None)
        if kept is None or kept[0] != state:
            self._samples_kept = kept = (state, {})
        if (n, seed) not in kept[1]:
            z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
            # speed: 256 rows at a time: 10,000 at once spend ~2x longer in the conv generator's
            # transposed convs (activations far out of cache); the same values bit for bit
            kept[1][n, seed] = torch.cat([self.generate(part.to(self.device)).float().cpu()
                                          for part in z.split(256) or (z,)])
        return kept[1][n, seed].clone()  # a caller may change its copy in place

    def nets_version(self) -> tuple:
        """(step, every critic and sampler tensor's ``_version``): equal while no parameter or
        buffer of the critic or the reported generator has changed (in-place updates bump it)."""
        nets = (self.critic, self.sampler)
        return self.step, tuple(t._version for net in nets for t in net.state_dict().values())

    def critic_surface(self, resolution: int = 100, margin: float = 0.25):
        """The critic's value on a grid covering the data: (xs, ys, values[res, res]).

        Kept until a parameter changes (each in-place update bumps a tensor's ``_version``): the
        final evaluation's TensorBoard picture and the run folder's surface share one."""
        key = (resolution, margin, self.nets_version())
        cached = getattr(self, "_surface", None)
        if cached is None or cached[0] != key:
            self._surface = (key, self._critic_surface(resolution, margin))
        return self._surface[1]

    @torch.no_grad()
    def _critic_surface(self, resolution: int, margin: float):
        points = torch.cat([self.held_real.cpu(), self.sample(len(self.held_real), self.config.seed)])
        low, high = points.min(0).values, points.max(0).values
        pad = margin * (high - low).clamp_min(1e-3)
        xs = torch.linspace(float(low[0] - pad[0]), float(high[0] + pad[0]), resolution)
        ys = torch.linspace(float(low[1] - pad[1]), float(high[1] + pad[1]), resolution)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        with self.measured_critic() as critic:
            values = score_points(critic, grid.to(self.device)).reshape(resolution, resolution).cpu()
        return xs.numpy(), ys.numpy(), values.numpy()

