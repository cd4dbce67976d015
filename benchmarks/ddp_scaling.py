"""Throughput of torchrun data parallelism on this machine: 1 process vs N processes.

Each configuration is a real ``torchrun -m wganlab train`` run; the figure is generator
steps per second of the training loop (the run's own clock, without start-up), and samples
per second through the critic (global batch x n_critic x steps / s).

    python benchmarks/ddp_scaling.py [--procs 1 2] [--steps 60] [--hidden 512] [--batch 256] [--device cuda]

Two scalings are measured: strong (the global batch is fixed and split over the ranks) and
weak (each rank keeps the full batch, so the global batch grows with the ranks).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(procs: int, global_batch: int, steps: int, hidden: int, threads: int, device: str = "cpu") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={procs}",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "wganlab", "train",
                   "--preset", "wgan-gp", "--hidden", str(hidden), "--batch-size", str(global_batch),
                   "--steps", str(steps), "--log-every", str(steps), "--eval-every", "0", "--eval-samples", "500",
                   "--w1-samples", "200", "--threads", str(threads), "--device", device, "--no-doctor",
                   "--logger", "jsonl", "--no-progress", "--out", str(out)]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo")
        subprocess.run(command, check=True, capture_output=True, env=env, timeout=3600)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        seconds = [r["time"] for r in records if r["kind"] == "train"][-1]
        return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: one GPU per rank (NCCL)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    n_critic = 5
    print(f"WGAN-GP, 3x{args.hidden} MLPs, n_critic {n_critic}, {args.steps} steps, {cores} cores")
    print(f"{'scaling':8s} {'procs':>5s} {'threads':>7s} {'batch':>6s} {'steps/s':>8s} {'samples/s':>10s} {'vs 1':>6s}")
    for scaling in ("strong", "weak"):
        base = None
        for procs in args.procs:
            threads = max(1, cores // procs)
            batch = args.batch if scaling == "strong" else args.batch * procs
            rate = run(procs, batch, args.steps, args.hidden, threads, args.device)
            samples = rate * batch * n_critic
            base = base or samples
            print(f"{scaling:8s} {procs:5d} {threads:7d} {batch:6d} {rate:8.2f} {samples:10.0f} {samples / base:6.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
