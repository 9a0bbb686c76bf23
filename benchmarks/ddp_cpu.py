"""Data-parallel PPO on the CPU: 1 rank against 2 (`townlet train --strategy ppo --nproc N`).

Two measurements, each run as a user would run it (the CLI in a subprocess; the ranks are
torchrun's processes, the peer is the same command with one process):

- time to target: CartPole-v1 with PPO's defaults (8 environments, shared out over the
  ranks; a greedy evaluation every 8 updates, stop at a mean return of 475), per seed: the
  wall time and environment steps until the run stops (or its 100,000-step budget ends).
- throughput: a fixed budget with no evaluation and no early stop, on CartPole-v1 (cheap
  environment: the update dominates) and LunarLander-v3 (16 environments: the environment
  steps dominate): environment steps per second of wall time, launcher start included.
- a large network: CartPole with 64 environments, a 256x256 network and 2,048-row
  mini-batches, where a mini-batch's compute outweighs the all-reduce of its gradients.
- width: the same throughput on CartPole with 8, 64 and 512 environments (`--widths`; the
  mini-batch grows with the batch), to show where one machine's cores run out.

Throughput is printed twice: over the command's wall time (torchrun and every rank's start
included) and over the run's own `duration_sec` (training alone).

Printed: each figure for 1 and 2 ranks, the ratio 2 ranks / 1 rank and the scaling
efficiency (ratio / 2). Runs alternate 1 and 2 ranks; medians over --seeds (time to target)
and --repeats (throughput) are reported. Run it on an otherwise idle machine.

    .venv/bin/python benchmarks/ddp_cpu.py [--seeds 3] [--repeats 3] [--skip-target]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_BUDGET = 100_000
THROUGHPUT = {
    "CartPole-v1": ["--set", "ppo.total_timesteps=65536"],
    "LunarLander-v3": [
        "--set",
        "ppo.env=LunarLander-v3",
        "--set",
        "ppo.num_envs=16",
        "--set",
        "ppo.num_steps=128",
        "--set",
        "ppo.minibatch_size=512",
        "--set",
        "ppo.total_timesteps=65536",
    ],
}
#: A network big enough that a mini-batch's compute outweighs a gloo all-reduce (about
#: 1 ms on the VM the figures in RESULTS.md come from).
LARGE = [
    "--set",
    "ppo.num_envs=64",
    "--set",
    "ppo.num_steps=128",
    "--set",
    "ppo.minibatch_size=2048",
    "--set",
    "ppo.update_epochs=4",
    "--set",
    "ppo.network.hidden_sizes=[256,256]",
    "--set",
    "ppo.total_timesteps=131072",
]
NO_EVALUATION = [
    "--set",
    "ppo.eval_every=null",
    "--set",
    "ppo.stop_return=null",
    "--set",
    "ppo.eval_episodes=1",
]


def train_command(run_dir: Path, folder: Path, *args: str) -> list[str]:
    """`townlet train --strategy ppo ARGS` into `run_dir`, as a user runs it, with its
    carried state under `folder` and its result as JSON on stdout."""
    return [
        sys.executable,
        "-m",
        "townlet_core.cli",
        "train",
        "--strategy",
        "ppo",
        "--run-dir",
        str(run_dir),
        "--set",
        f"runs_root={folder / 'root'}",
        "--json",
        "-q",
        *args,
    ]


def _run(nproc: int, seed: int, extra: list[str], folder: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one `townlet train` and its result."""
    run_dir = folder / f"n{nproc}-s{seed}-{time.monotonic_ns()}"
    command = train_command(
        run_dir, folder, "--nproc", str(nproc), "--seed", str(seed), "--device", "cpu", *extra
    )
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return wall, json.loads(done.stdout)


def _ratio_line(name: str, one: float, two: float, unit: str, higher_is_better: bool) -> str:
    ratio = two / one if higher_is_better else one / two
    return (
        f"{name:<34} 1 rank {one:>9.1f} {unit:<8} 2 ranks {two:>9.1f} {unit:<8} "
        f"speed-up {ratio:4.2f}x  efficiency {ratio / 2:4.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-target", action="store_true")
    parser.add_argument(
        "--widths",
        default="8,64,512",
        help="CartPole environment counts for the width table (empty: skip it)",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if not args.skip_target:
            walls: dict[int, list[float]] = {1: [], 2: []}
            steps: dict[int, list[int]] = {1: [], 2: []}
            for seed in range(args.seeds):
                for nproc in (1, 2):
                    budget = ["--set", f"ppo.total_timesteps={TARGET_BUDGET}"]
                    wall, result = _run(nproc, seed, budget, folder)
                    reached = (result["eval_mean_return"] or 0) >= 475
                    walls[nproc].append(wall)
                    steps[nproc].append(result["env_steps"])
                    print(
                        f"  CartPole to 475, seed {seed}, {nproc} rank(s): {wall:6.1f} s, "
                        f"{result['env_steps']:>6} steps, final {result['eval_mean_return']:.1f}"
                        f"{'' if reached else ' (target not reached)'}"
                    )
            print(
                _ratio_line(
                    "CartPole time to 475 (median)",
                    statistics.median(walls[1]),
                    statistics.median(walls[2]),
                    "s",
                    higher_is_better=False,
                )
            )
            print(
                f"{'  steps to 475 (median)':<34} 1 rank {statistics.median(steps[1]):>9.0f}"
                f"          2 ranks {statistics.median(steps[2]):>9.0f}"
            )
        cases = {**THROUGHPUT, "CartPole x64, 256x256 net": LARGE}
        for name, extra in cases.items():
            _throughput(name, [*extra, *NO_EVALUATION], args.repeats, folder)
        for width in [int(w) for w in args.widths.split(",") if w]:
            extra = [
                "--set",
                f"ppo.num_envs={width}",
                "--set",
                "ppo.num_steps=32",
                "--set",
                f"ppo.minibatch_size={min(256 * max(1, width // 8), width * 32)}",
                "--set",
                f"ppo.total_timesteps={max(65536, width * 32 * 4)}",
                *NO_EVALUATION,
            ]
            _throughput(f"CartPole x{width}", extra, args.repeats, folder)
    return 0


def _throughput(name: str, extra: list[str], repeats: int, folder: Path) -> None:
    """Environment steps per second of 1 and 2 ranks: of the command's wall time (start-up
    of the processes included) and of the run itself (its `duration_sec`)."""
    wall_rates: dict[int, list[float]] = {1: [], 2: []}
    run_rates: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(repeats):
        for nproc in (1, 2):
            wall, result = _run(nproc, repeat, extra, folder)
            wall_rates[nproc].append(result["env_steps"] / wall)
            run_rates[nproc].append(result["env_steps"] / result["duration_sec"])
    for what, rates in (("wall", wall_rates), ("in run", run_rates)):
        print(
            _ratio_line(
                f"{name} steps/s, {what}",
                statistics.median(rates[1]),
                statistics.median(rates[2]),
                "steps/s",
                higher_is_better=True,
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
