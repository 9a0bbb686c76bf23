"""PPO on a CUDA GPU against the same run on the CPU, and the GPU paths a user meets.

Run on a machine with at least one CUDA GPU. Every run is a user's command (the CLI in a
subprocess), so start-up, device choice and NCCL are exercised as `townlet train` does them:

- device choice: `--device auto` and `--device cuda` resolve to a GPU (the device the
  result records is printed); `--device cuda:N` past the last GPU is refused with exit
  code 2 before a run directory exists.
- throughput, CPU against CUDA: CartPole with PPO's defaults (8 environments, a 64x64
  network: the per-step cost of moving observations to the GPU and actions back dominates)
  and CartPole x64 with a 256x256 network and 2,048-row mini-batches (the update
  dominates). Environment steps per second of the run's own `duration_sec`, medians over
  --repeats, and the ratio cuda / cpu.
- time to target: CartPole to a greedy 475 with the defaults, on each device.
- ranks: `--nproc 2 --device cuda`. With a GPU per rank the ranks talk over NCCL and the
  throughput is printed; with fewer GPUs than ranks the command's exit code and its last
  line of error output are printed (what a user with one GPU sees).

    python benchmarks/cuda_vs_cpu.py [--repeats 2] [--seeds 2]
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_cpu import NO_EVALUATION, train_command  # the CPU ranks benchmark's

CASES = {
    "CartPole, defaults": ["--set", "ppo.total_timesteps=65536"],
    "CartPole x64, 256x256 net": [
        "--set",
        "ppo.num_envs=64",
        "--set",
        "ppo.num_steps=128",
        "--set",
        "ppo.minibatch_size=2048",
        "--set",
        "ppo.network.hidden_sizes=[256,256]",
        "--set",
        "ppo.total_timesteps=262144",
    ],
}


def _train(folder: Path, *args: str) -> tuple[int, float, dict[str, Any] | None, str]:
    """Exit code, wall seconds, result (None when there is none) and stderr of one run."""
    command = train_command(folder / f"run-{time.monotonic_ns()}", folder, *args)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    result = json.loads(done.stdout) if done.returncode in (0, 1) and done.stdout else None
    return done.returncode, wall, result, done.stderr


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _device_choice(folder: Path) -> None:
    for requested in ("auto", "cuda"):
        code, wall, result, err = _train(
            folder, "--device", requested, "--set", "ppo.total_timesteps=2048", *NO_EVALUATION
        )
        device = result["device"] if result else None
        print(f"--device {requested:<5} exit {code}, result device {device}, {wall:.1f} s")
        if result is None:
            print(f"  {_last_line(err)}")
    missing = f"cuda:{torch.cuda.device_count()}"
    code, _, _, err = _train(folder, "--device", missing)
    print(f"--device {missing} exit {code}: {_last_line(err)}")


def _throughput(folder: Path, repeats: int) -> None:
    for name, extra in CASES.items():
        rates: dict[str, list[float]] = {"cpu": [], "cuda": []}
        for repeat in range(repeats):
            for device, runs in rates.items():
                code, _, result, err = _train(
                    folder, "--device", device, "--seed", str(repeat), *extra, *NO_EVALUATION
                )
                if result is None:
                    raise SystemExit(f"{name} on {device} failed ({code}): {_last_line(err)}")
                runs.append(result["env_steps"] / result["duration_sec"])
        cpu, cuda = statistics.median(rates["cpu"]), statistics.median(rates["cuda"])
        print(
            f"{name:<28} cpu {cpu:>8.0f} steps/s  cuda {cuda:>8.0f} steps/s  "
            f"cuda/cpu {cuda / cpu:4.2f}x"
        )


def _to_target(folder: Path, seeds: int) -> None:
    for device in ("cpu", "cuda"):
        walls, steps = [], []
        for seed in range(seeds):
            budget = ["--set", "ppo.total_timesteps=100000"]
            _, wall, result, err = _train(folder, "--device", device, "--seed", str(seed), *budget)
            if result is None:
                raise SystemExit(f"CartPole to 475 on {device} failed: {_last_line(err)}")
            walls.append(wall)
            steps.append(result["env_steps"])
            print(
                f"  CartPole to 475, {device}, seed {seed}: {wall:5.1f} s, "
                f"{result['env_steps']} steps, final {result['eval_mean_return']:.1f}"
            )
        print(
            f"CartPole to 475 on {device}: median {statistics.median(walls):.1f} s, "
            f"{statistics.median(steps):.0f} steps"
        )


def _ranks(folder: Path) -> None:
    code, wall, result, err = _train(
        folder, "--nproc", "2", "--device", "cuda", *CASES["CartPole, defaults"], *NO_EVALUATION
    )
    gpus = torch.cuda.device_count()
    if result is None:
        print(f"--nproc 2 --device cuda on {gpus} GPU(s): exit {code}: {_last_line(err)}")
        return
    rate = result["env_steps"] / result["duration_sec"]
    print(
        f"--nproc 2 --device cuda on {gpus} GPU(s): exit {code}, device {result['device']}, "
        f"{rate:.0f} steps/s in run, {wall:.1f} s wall"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--skip-target", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark compares a GPU with the CPU")
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {names}, torch "
        f"{torch.__version__} (CUDA {torch.version.cuda}), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _device_choice(folder)
        _ranks(folder)
        _throughput(folder, args.repeats)
        if not args.skip_target:
            _to_target(folder, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
