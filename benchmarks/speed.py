"""Generator steps per second: wganlab against the naive loop, interleaved in one process.

    python benchmarks/speed.py                       # every row, 3 repeats
    python benchmarks/speed.py --rows toy512 toy512-bf16 --repeats 5 --threads 1
    python benchmarks/speed.py --device cuda         # the same table on a GPU

Each repeat runs the naive loop (``benchmarks/naive_loop.py``) and wganlab on the same model,
batch and seed one after the other, alternating which goes first, so both see the same
machine load; the ratio is taken within each repeat and the table gives min / median / max
over repeats. Rows:

* ``toy512``, ``toy512-bf16``: WGAN-GP, 3x512 MLPs, batch 256, n_critic 5 (``--preset wgan-gp``),
  ``Trainer.train()`` (with its log lines) against ``NaiveWGANGP.train()``;
* ``toy128``, ``toy128-bf16``: the same with 3x128 MLPs;
* ``mnist``, ``mnist-bf16``: the WGAN-GP MNIST conv nets (``wganlab.nets.conv_generator(128, 1)``,
  ``conv_critic(1)``), batch 64, n_critic 5, on random (N, 1, 28, 28) images in [-1, 1]: the
  trainer's own ``critic_step`` / ``generator_step`` with the conv nets swapped in, since the
  trainer's image data path is not on this branch;
* ``sweep32``: ``run_sweep`` of 32 default-preset runs (3x128) against the same 32 runs
  trained one after another by ``Trainer`` (runs per hour; both score each run on 100 samples).

FLOPs of one generator step (n_critic critic steps and a generator step, double backward
included) are counted with ``torch.utils.flop_counter.FlopCounterMode``; the fraction of peak
divides FLOPs x steps/s by the best large-matmul rate measured in this process (2048^3, fp32,
or bf16 for the bf16 rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_loop import NaiveWGANGP  # noqa: E402

from wganlab.config import resolve  # noqa: E402
from wganlab.nets import conv_critic, conv_generator  # noqa: E402
from wganlab.trainer import Trainer, _optimizer  # noqa: E402

QUIET = dict(eval_every=0, eval_samples=100, w1_samples=100, log_every=50, ema=0.0, lr_decay_fraction=0.0)
ROWS = ("toy512", "toy512-bf16", "toy128", "toy128-bf16", "mnist", "mnist-bf16", "sweep32")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, n: int = 2048, tries: int = 5) -> float:
    """Best FLOP/s of an n x n x n matmul."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = 0.0
    for _ in range(tries):
        _sync(device)
        started = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - started))
    return best


class _FlopCount(TorchDispatchMode):
    """Sums torch's FLOP formulas (``torch.utils.flop_counter``) over every op that runs.

    ``FlopCounterMode`` itself cannot be used: its module tracker's backward hooks break the
    ``autograd.grad`` of the gradient penalty.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(step) -> float:
    with _FlopCount() as counter:
        step()
    return float(counter.total)


# -- the toy rows ---------------------------------------------------------------------------------
def toy_config(hidden: int, precision: str, steps: int, device: str):
    return resolve("wgan-gp", dict(QUIET, hidden=hidden, steps=steps, precision=precision, device=device))


def time_toy_wganlab(config) -> float:
    trainer = Trainer(config)
    trainer.train()
    last = [r for r in trainer.history if r["kind"] == "train"][-1]
    return last["step"] / last["time"]  # the loop's own clock, before the final evaluation


def time_naive(loop: NaiveWGANGP, steps: int, device: str) -> float:
    loop.train_step()  # first-call costs out of the clock, as the trainer's are after construction
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        loop.train_step()
    _sync(device)
    return steps / (time.perf_counter() - started)


# -- the MNIST conv rows ----------------------------------------------------------------------------
def image_pool(n: int = 2048, seed: int = 1234) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def mnist_config(precision: str, device: str):
    return resolve("wgan-gp", dict(QUIET, latent_dim=128, batch_size=64, precision=precision, device=device))


def mnist_trainer(config, pool: torch.Tensor) -> Trainer:
    """The trainer's step functions on the conv nets and random images."""
    trainer = Trainer(config)
    torch.manual_seed(config.seed)
    trainer.generator = conv_generator(config.latent_dim, 1).to(trainer.device)
    trainer.critic = conv_critic(1).to(trainer.device)
    trainer.opt_g = _optimizer(config, trainer.generator.parameters(), config.lr_g)
    trainer.opt_d = _optimizer(config, trainer.critic.parameters(), config.lr_d)
    trainer._real = lambda n: trainer._to_device(pool[torch.randint(0, len(pool), (n,), generator=trainer.rng)])
    return trainer


def mnist_naive(config, pool: torch.Tensor) -> NaiveWGANGP:
    torch.manual_seed(config.seed)
    return NaiveWGANGP(config, generator=conv_generator(config.latent_dim, 1), critic=conv_critic(1),
                       sample_real=lambda n, rng: pool[torch.randint(0, len(pool), (n,), generator=rng)])


def trainer_step(trainer: Trainer):
    def step():
        for _ in range(trainer.config.n_critic):
            trainer.critic_step()
        trainer.generator_step()
    return step


def time_steps(step, steps: int, device: str) -> float:
    step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps / (time.perf_counter() - started)


# -- the sweep row ----------------------------------------------------------------------------------
def sweep_pair(runs: int, steps: int, device: str) -> tuple[float, float]:
    """(sequential runs per hour, sweep runs per hour) for ``runs`` default-preset runs."""
    from wganlab.sweep import run_sweep

    base = resolve(None, dict(eval_every=0, eval_samples=100, w1_samples=100, log_every=50, steps=steps,
                              device=device))
    started = time.perf_counter()
    run_sweep(base, seeds=list(range(runs)))
    sweep_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for seed in range(runs):
        Trainer(resolve(None, dict(base.to_dict(), seed=seed))).train()
    sequential_seconds = time.perf_counter() - started
    return 3600 * runs / sequential_seconds, 3600 * runs / sweep_seconds


def _stats(values):
    return min(values), statistics.median(values), max(values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--toy-steps", type=int, default=10, help="generator steps per timed toy run")
    parser.add_argument("--mnist-steps", type=int, default=2)
    parser.add_argument("--sweep-steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; "
          f"{args.repeats} interleaved repeats per row", flush=True)
    peaks = {dtype: matmul_peak(device, dtype) for dtype in (torch.float32, torch.bfloat16)}

    table = []
    for row in args.rows:
        precision = "bf16" if row.endswith("bf16") else "fp32"
        naive_rates, fast_rates, ratios = [], [], []
        flops = None
        for repeat in range(args.repeats):
            # the peak too is re-measured between repeats: the best rate seen is the machine's
            peaks = {dtype: max(peak, matmul_peak(device, dtype)) for dtype, peak in peaks.items()}
            if row.startswith("toy"):
                config = toy_config(int(row[3:6]), precision, args.toy_steps, device)
                plain = toy_config(int(row[3:6]), "fp32", args.toy_steps, device)
                if flops is None:
                    probe = Trainer(config)
                    flops = count_flops(trainer_step(probe))
                run_naive = lambda: time_naive(NaiveWGANGP(plain), args.toy_steps, device)  # noqa: E731
                run_fast = lambda: time_toy_wganlab(config)  # noqa: E731
            elif row.startswith("mnist"):
                pool = image_pool()
                config = mnist_config(precision, device)
                plain = mnist_config("fp32", device)
                if flops is None:
                    flops = count_flops(trainer_step(mnist_trainer(config, pool)))
                run_naive = lambda: time_naive(mnist_naive(plain, pool), args.mnist_steps, device)  # noqa: E731
                run_fast = lambda: time_steps(trainer_step(mnist_trainer(config, pool)), args.mnist_steps, device)  # noqa: E731
            else:
                sequential, swept = sweep_pair(32, args.sweep_steps, device)
                naive_rates.append(sequential)
                fast_rates.append(swept)
                ratios.append(swept / sequential)
                print(f"  {row} repeat {repeat}: 32 sequential runs {sequential:.0f} runs/h, sweep {swept:.0f} "
                      f"runs/h, ratio {swept / sequential:.2f}", flush=True)
                continue
            # the naive loop is always the plain fp32 loop; alternate which goes first
            if repeat % 2 == 0:
                naive = run_naive()
                fast = run_fast()
            else:
                fast = run_fast()
                naive = run_naive()
            naive_rates.append(naive)
            fast_rates.append(fast)
            ratios.append(fast / naive)
            print(f"  {row} repeat {repeat}: naive {naive:.2f} steps/s, wganlab {fast:.2f} steps/s, "
                  f"ratio {fast / naive:.2f}", flush=True)
        table.append((row, precision, naive_rates, fast_rates, ratios, flops))
    peaks = {dtype: max(peak, matmul_peak(device, dtype)) for dtype, peak in peaks.items()}

    print()
    print(f"matmul peak (2048^3, best in this process): fp32 {peaks[torch.float32] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks[torch.bfloat16] / 1e9:.1f} GFLOP/s")
    print("| row | naive (min / median / max) | wganlab (min / median / max) | ratio (min / median / max) "
          "| GFLOP per step | % of peak naive / wganlab |")
    print("|---|---|---|---|---|---|")
    for row, precision, naive_rates, fast_rates, ratios, flops in table:
        unit = "runs/h" if row == "sweep32" else "steps/s"
        fmt = (lambda v: f"{v:.0f}") if row == "sweep32" else (lambda v: f"{v:.2f}")
        cells = [" / ".join(fmt(v) for v in _stats(x)) for x in (naive_rates, fast_rates)]
        ratio = " / ".join(f"{v:.2f}" for v in _stats(ratios))
        if flops:
            # the naive loop is fp32: its fraction is of the fp32 peak; wganlab's of its precision's peak
            peak_fast = peaks[torch.bfloat16 if precision == "bf16" else torch.float32]
            share = (f"{100 * flops * statistics.median(naive_rates) / peaks[torch.float32]:.0f}% / "
                     f"{100 * flops * statistics.median(fast_rates) / peak_fast:.0f}%")
            gflop = f"{flops / 1e9:.2f}"
        else:
            share, gflop = "-", "-"
        print(f"| {row} | {cells[0]} {unit} | {cells[1]} {unit} | {ratio}x | {gflop} | {share} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
