"""Generator steps per second: wganlab against the naive loop, interleaved in one process.

    python benchmarks/speed.py                       # every row, 3 repeats
    python benchmarks/speed.py --rows toy512 toy512-bf16 --repeats 5 --threads 1
    python benchmarks/speed.py --device cuda         # the same table on a GPU
    python benchmarks/speed.py --mode interleaved    # both loops in one process, alternating blocks

Each repeat runs the naive loop (``benchmarks/naive_loop.py``) and wganlab on the same model,
batch and seed one after the other, alternating which goes first, so both see the same
machine load; the ratio is taken within each repeat and the table gives min / median / max
over repeats. Rows:

* ``toy512``, ``toy512-bf16``: WGAN-GP, 3x512 MLPs, batch 256, n_critic 5 (``--preset wgan-gp``),
  ``Trainer.train()`` (with its log lines) against ``NaiveWGANGP.train()``;
* ``toy128``, ``toy128-bf16``: the same with 3x128 MLPs;
* ``toy128-compiled``, ``toy512-compiled``: wganlab with ``critic_backward = "compiled"`` (its critic
  step through torch.compile). Read them with ``--mode interleaved``, whose warm-up step holds the
  compilation; a ``--mode`` worker's clock includes compiling again in its timed run;
* ``mnist``, ``mnist-bf16``: ``--preset wgan-gp-mnist`` (the WGAN-GP MNIST conv nets, n_critic 5)
  at batch 64 on the MNIST digits (``wganlab data fetch mnist`` first), ``Trainer.train()``
  against the naive loop with the same conv nets and data;
* ``sweep32``: ``run_sweep`` of 32 default-preset runs (3x128) against the same 32 runs
  trained one after another by ``Trainer`` (runs per hour; both score each run on 100 samples);
* ``process128``, ``process512``: whole processes, start to exit, as a user runs them: ``wganlab train
  --preset wgan-gp --hidden H --eval-every 0 --steps N`` (its final evaluation, report and
  TensorBoard pictures included) against ``python benchmarks/naive_loop.py --hidden H --steps N``,
  600 steps of 3x128 and 200 of 3x512, batch 256 (runs/h);
* ``sweep32-cli``: the same as a user runs them: 32 ``wganlab train --seed i`` processes one
  after another (each with its run folder and report) against one ``wganlab sweep --seeds 0 ... 31``
  (``--cli-sweep-steps`` steps each, default 200).

``--mode interleaved`` measures the toy and MNIST rows a second way, less exposed to this
machine's minute-to-minute drift: both loops in one process, alternating blocks of generator
steps (``--block`` steps each, first one loop then the other, the order swapped every block), so
that both see the same load; the ratio is total naive time over total wganlab time, and the
blocks' own ratios give min / median / max. wganlab's allocator setting
(``keep_freed_memory_for_reuse``) then holds for the naive loop too, which makes it faster:
the interleaved ratios are the conservative ones. The loop body is ``Trainer._one_step``, the
body of ``Trainer.train()`` (logging included).

FLOPs of one generator step of each loop (n_critic critic steps and a generator step, double
backward included) are counted with ``torch.utils.flop_counter.FlopCounterMode``; the fraction of peak
divides each loop's FLOPs x steps/s by the best large-matmul rate measured in this process (2048^3, fp32,
or bf16 for the bf16 rows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_loop import NaiveWGANGP  # noqa: E402

from wganlab.config import resolve  # noqa: E402
from wganlab.core.nets import conv_critic, conv_generator  # noqa: E402
from wganlab.data import make_dataset  # noqa: E402
from wganlab.training.loop import Trainer  # noqa: E402

QUIET = dict(eval_every=0, eval_samples=100, w1_samples=100, log_every=50, ema=0.0, lr_decay_fraction=0.0)
ROWS = ("toy512", "toy512-bf16", "toy128", "toy128-bf16", "toy128-compiled", "toy512-compiled", "mnist", "mnist-bf16", "sweep32", "sweep32-cli",
        "process128", "process512")
PROCESS_ROWS = {"process128": (128, 600), "process512": (512, 200)}  # whole processes: (hidden, steps)


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


# -- the timed runs --------------------------------------------------------------------------------
def toy_config(hidden: int, precision: str, steps: int, device: str):
    return resolve("wgan-gp", dict(QUIET, hidden=hidden, steps=steps, precision=precision, device=device))


def mnist_config(precision: str, steps: int, device: str):
    """The WGAN-GP MNIST preset (conv nets 64-128-256, n_critic 5) at batch 64."""
    return resolve("wgan-gp-mnist", dict(QUIET, batch_size=64, held_out=64, steps=steps, precision=precision,
                                         device=device))


def time_wganlab(config) -> float:
    """Generator steps per second of ``Trainer.train()``, by the loop's own clock (which stops
    before the final evaluation)."""
    trainer = Trainer(config)
    trainer.train()
    last = [r for r in trainer.history if r["kind"] == "train"][-1]
    return last["step"] / last["time"]


def naive_loop(config) -> NaiveWGANGP:
    """The naive loop on the config's data and nets (the conv nets for image data)."""
    if config.net != "conv":
        return NaiveWGANGP(config)
    dataset = make_dataset(config)
    torch.manual_seed(config.seed)
    return NaiveWGANGP(config, generator=conv_generator(config.latent_dim, dataset.shape[0]),
                       critic=conv_critic(dataset.shape[0]),
                       sample_real=lambda n, rng: dataset.sample(n, generator=rng))


def time_naive(config, steps: int, device: str) -> float:
    """Generator steps per second of the naive loop, its first step (Adam's state) included as
    the trainer's is."""
    loop = naive_loop(config)
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        loop.train_step()
    _sync(device)
    return steps / (time.perf_counter() - started)


def trainer_step(trainer: Trainer):
    def step():
        for _ in range(trainer.config.n_critic):
            trainer.critic_step()
        trainer.generator_step()
    return step


def naive_step(config):
    return naive_loop(config).train_step


# -- the sweep row ----------------------------------------------------------------------------------
def sweep_runs_per_hour(which: str, runs: int, steps: int, device: str) -> float:
    """Runs per hour of ``runs`` default-preset runs: one after another by ``Trainer`` ("naive")
    or stacked by ``run_sweep`` ("wganlab")."""
    from wganlab.training.sweep import run_sweep

    base = resolve(None, dict(eval_every=0, eval_samples=100, w1_samples=100, log_every=50, steps=steps,
                              device=device))
    started = time.perf_counter()
    if which == "wganlab":
        run_sweep(base, seeds=list(range(runs)))
    else:
        for seed in range(runs):
            Trainer(resolve(None, dict(base.to_dict(), seed=seed))).train()
    return 3600 * runs / (time.perf_counter() - started)


def cli_runs_per_hour(which: str, runs: int, steps: int) -> float:
    """Runs per hour of ``runs`` default-preset runs as a user starts them: ``runs`` processes of
    ``wganlab train --seed i`` one after another ("naive"), or one ``wganlab sweep --seeds ...``."""
    import tempfile

    wganlab = [sys.executable, "-m", "wganlab"]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        if which == "wganlab":
            commands = [wganlab + ["sweep", "--steps", str(steps), "--seeds", *map(str, range(runs)),
                                   "--out", str(Path(folder) / "sweep.json")]]
        else:
            commands = [wganlab + ["train", "--steps", str(steps), "--seed", str(seed), "--no-progress",
                                   "--out", str(Path(folder) / f"run{seed}")] for seed in range(runs)]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        return 3600 * runs / (time.perf_counter() - started)


def process_runs_per_hour(which: str, hidden: int, steps: int) -> float:
    """One whole process of a run, start to exit, in runs per hour (nothing warmed beforehand)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        if which == "wganlab":
            command = [sys.executable, "-m", "wganlab", "train", "--preset", "wgan-gp", "--hidden", str(hidden),
                       "--eval-every", "0", "--steps", str(steps), "--no-progress", "--out", str(Path(folder) / "run")]
        else:
            command = [sys.executable, str(Path(__file__).resolve().parent / "naive_loop.py"), "--hidden", str(hidden),
                       "--steps", str(steps)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return 3600 / (time.perf_counter() - started)


def configs_of(row: str, args) -> tuple:
    """(wganlab's config, the naive loop's fp32 config) of a toy or MNIST row."""
    precision = "bf16" if row.endswith("bf16") else "fp32"
    if row.startswith("toy"):
        hidden = int(row[3:6])
        steps = args.toy_steps if hidden == 512 else args.small_toy_steps
        config = toy_config(hidden, precision, steps, args.device)
        if row.endswith("compiled"):
            config = resolve(None, dict(config.to_dict(), critic_backward="compiled"))
        return config, toy_config(hidden, "fp32", steps, args.device)
    return (mnist_config(precision, args.mnist_steps, args.device),
            mnist_config("fp32", args.mnist_steps, args.device))


def worker(row: str, which: str, args) -> float:
    """One timed run in this (fresh) process: steps/s, or runs/h for the sweep row. A one-step
    run of the same kind first pays the process's first-call costs outside the clock."""
    if row == "sweep32-cli":
        return cli_runs_per_hour(which, 32, args.cli_sweep_steps)
    if row in PROCESS_ROWS:
        return process_runs_per_hour(which, *PROCESS_ROWS[row])
    if row == "sweep32":
        sweep_runs_per_hour(which, 2, 1, args.device)
        return sweep_runs_per_hour(which, 32, args.sweep_steps, args.device)
    config, plain = configs_of(row, args)
    if which == "naive":
        time_naive(resolve(None, dict(plain.to_dict(), steps=1)), 1, args.device)
        return time_naive(plain, plain.steps, args.device)
    time_wganlab(resolve(None, dict(config.to_dict(), steps=1)))
    return time_wganlab(config)


def _in_subprocess(what: str, flags: list[str], args) -> dict:
    """This script with ``flags`` (a worker) in a fresh process; its last output line, parsed."""
    command = [sys.executable, str(Path(__file__).resolve()), *flags, "--device", args.device,
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the {what} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_run(row: str, which: str, args) -> float:
    """``worker`` in a subprocess: each run gets a process of its own, so neither loop inherits
    the other's allocator state, thread pools or warmed caches."""
    flags = ["--worker", which, "--rows", row, "--toy-steps", str(args.toy_steps),
             "--small-toy-steps", str(args.small_toy_steps), "--mnist-steps", str(args.mnist_steps),
             "--sweep-steps", str(args.sweep_steps), "--cli-sweep-steps", str(args.cli_sweep_steps)]
    return _in_subprocess(f"{which} run of {row}", flags, args)["rate"]


def interleaved(row: str, args) -> dict:
    """Both loops of a toy or MNIST row in this process, in alternating blocks of steps."""
    from wganlab.training.loop import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()  # before both loops are built: the naive one gets it too
    config, plain = configs_of(row, args)
    big = 10 ** 9  # steps never reached: no end-of-run evaluation inside the timing
    config, plain = resolve(None, dict(config.to_dict(), steps=big)), resolve(None, dict(plain.to_dict(), steps=big))
    naive, trainer = naive_loop(plain), Trainer(config)
    started = time.perf_counter()
    loops = {"naive": naive.train_step, "wganlab": lambda: trainer._one_step(started, big, None)}
    block = args.block or (1 if row.startswith("mnist") else 5 if row.startswith("toy512") else 10)
    for step in loops.values():  # warm-up: Adam's state, first-call costs
        step()
    totals = {"naive": 0.0, "wganlab": 0.0}
    ratios = []
    for index in range(args.blocks):
        times = {}
        for which in (("naive", "wganlab") if index % 2 == 0 else ("wganlab", "naive")):
            _sync(args.device)
            begin = time.perf_counter()
            for _ in range(block):
                loops[which]()
            _sync(args.device)
            times[which] = time.perf_counter() - begin
            totals[which] += times[which]
        ratios.append(times["naive"] / times["wganlab"])
    steps = block * args.blocks
    return {"naive": steps / totals["naive"], "wganlab": steps / totals["wganlab"],
            "ratio": totals["naive"] / totals["wganlab"], "block_ratios": ratios}


def interleaved_table(args) -> int:
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}; "
          f"interleaved blocks, {args.blocks} per loop and row", flush=True)
    rows = [r for r in args.rows if not r.startswith("sweep")]
    print("| row | naive steps/s | wganlab steps/s | ratio | block ratios (min / median / max) |")
    print("|---|---|---|---|---|")
    for row in rows:
        result = _in_subprocess(f"interleaved run of {row}", ["--worker-interleaved", "--rows", row, "--blocks",
                                                              str(args.blocks), "--block", str(args.block)], args)
        spread = " / ".join(f"{v:.2f}" for v in _stats(result["block_ratios"]))
        print(f"| {row} | {result['naive']:.2f} | {result['wganlab']:.2f} | {result['ratio']:.2f}x | {spread} |",
              flush=True)
    return 0


def _stats(values):
    return min(values), statistics.median(values), max(values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--toy-steps", type=int, default=30, help="generator steps per timed 3x512 run")
    parser.add_argument("--small-toy-steps", type=int, default=150, help="generator steps per timed 3x128 run")
    parser.add_argument("--mnist-steps", type=int, default=3)
    parser.add_argument("--sweep-steps", type=int, default=5)
    parser.add_argument("--cli-sweep-steps", type=int, default=200, help="steps of each run of the sweep32-cli row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--mode", choices=("process", "interleaved"), default="process",
                        help="process: each timed run in a process of its own (default); interleaved: both loops "
                             "in one process, alternating blocks of steps")
    parser.add_argument("--blocks", type=int, default=30, help="blocks per loop and row (interleaved mode)")
    parser.add_argument("--block", type=int, default=0,
                        help="generator steps per block (interleaved mode; 0: 10 for 3x128, 5 for 3x512, 1 for MNIST)")
    parser.add_argument("--worker", choices=("naive", "wganlab"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-interleaved", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps({"rate": worker(args.rows[0], args.worker, args)}))
        return 0
    if args.worker_interleaved:
        print(json.dumps(interleaved(args.rows[0], args)))
        return 0
    if args.mode == "interleaved":
        return interleaved_table(args)
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
            if not row.startswith(("sweep", "process")) and flops is None:  # each loop's FLOPs, once per row
                config, plain = configs_of(row, args)
                flops = (count_flops(naive_step(plain)), count_flops(trainer_step(Trainer(config))))
            # the naive loop is always the plain fp32 loop; alternate which goes first
            if repeat % 2 == 0:
                naive = timed_run(row, "naive", args)
                fast = timed_run(row, "wganlab", args)
            else:
                fast = timed_run(row, "wganlab", args)
                naive = timed_run(row, "naive", args)
            naive_rates.append(naive)
            fast_rates.append(fast)
            ratios.append(fast / naive)
            unit = "runs/h" if row.startswith(("sweep", "process")) else "steps/s"
            print(f"  {row} repeat {repeat}: naive {naive:.2f} {unit}, wganlab {fast:.2f} {unit}, "
                  f"ratio {fast / naive:.2f}", flush=True)
        table.append((row, precision, naive_rates, fast_rates, ratios, flops))
    peaks = {dtype: max(peak, matmul_peak(device, dtype)) for dtype, peak in peaks.items()}

    print()
    print(f"matmul peak (2048^3, best in this process): fp32 {peaks[torch.float32] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks[torch.bfloat16] / 1e9:.1f} GFLOP/s")
    print("| row | naive (min / median / max) | wganlab (min / median / max) | ratio (min / median / max) "
          "| GFLOP per step naive / wganlab | % of peak naive / wganlab |")
    print("|---|---|---|---|---|---|")
    for row, precision, naive_rates, fast_rates, ratios, flops in table:
        unit = "runs/h" if row.startswith(("sweep", "process")) else "steps/s"
        fmt = (lambda v: f"{v:.0f}") if row.startswith(("sweep", "process")) else (lambda v: f"{v:.2f}")
        cells = [" / ".join(fmt(v) for v in _stats(x)) for x in (naive_rates, fast_rates)]
        ratio = " / ".join(f"{v:.2f}" for v in _stats(ratios))
        if flops:
            # Each loop's own FLOPs (wganlab's critic skips work the naive one does); the naive
            # loop is fp32, so its fraction is of the fp32 peak, wganlab's of its precision's peak.
            naive_flops, fast_flops = flops
            peak_fast = peaks[torch.bfloat16 if precision == "bf16" else torch.float32]
            share = (f"{100 * naive_flops * statistics.median(naive_rates) / peaks[torch.float32]:.0f}% / "
                     f"{100 * fast_flops * statistics.median(fast_rates) / peak_fast:.0f}%")
            gflop = f"{naive_flops / 1e9:.2f} / {fast_flops / 1e9:.2f}"
        else:
            share, gflop = "-", "-"
        print(f"| {row} | {cells[0]} {unit} | {cells[1]} {unit} | {ratio}x | {gflop} | {share} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
