"""Capture throughput for CartPole-v1 with the scripted expert, against a naive peer.

Target (issue): `townlet capture` records at least 20,000 transitions per second on one core.
The peer is the loop people write first: one `gymnasium.make("CartPole-v1")`, the same expert
called on a batch of one each step, and Python lists of per-step values turned into arrays
at the end. Both run in this process, pinned to one core when the OS allows it, so the
figures compare like with like.

    python benchmarks/capture_throughput.py [--episodes 100] [--repeats 3]

Exit code 0 when every capture configuration meets the target, 1 otherwise. Record the
printed table in benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np

from townlet_core.envs.capture import capture
from townlet_core.envs.experts import expert_for

TARGET = 20_000.0
ENV_ID = "CartPole-v1"


def pin_to_one_core() -> str:
    """Pin this process to its first allowed core; say which (or why not)."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no os.sched_setaffinity)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def naive_capture(episodes: int, seed: int) -> int:
    """The peer: one env, one expert call per step, Python lists; returns transitions."""
    env = gymnasium.make(ENV_ID)
    expert = expert_for(ENV_ID)
    transitions = 0
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, dones = [], [], [], []
        done = False
        while not done:
            action = int(np.asarray(expert(observation[None]))[0])
            next_observation, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            dones.append(done)
            observation = next_observation
        arrays = {
            "features": np.asarray(observations, dtype=np.float32),
            "actions": np.asarray(actions, dtype=np.int64),
            "rewards": np.asarray(rewards, dtype=np.float32),
            "dones": np.asarray(dones, dtype=bool),
        }
        transitions += len(arrays["actions"])
    env.close()
    return transitions


def best_rate(run: Callable[[], int], repeats: int) -> float:
    """Highest transitions/s over `repeats` runs (the least disturbed by other load)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        transitions = run()
        rates.append(transitions / (time.perf_counter() - start))
    return max(rates)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pinned = pin_to_one_core()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"({pinned}) python={platform.python_version()} gymnasium={gymnasium.__version__} "
        f"numpy={np.__version__}"
    )
    print(f"workload: {ENV_ID}, scripted expert, {args.episodes} episodes, best of {args.repeats}")
    naive = best_rate(lambda: naive_capture(args.episodes, seed=0), args.repeats)
    print(f"{'configuration':<40} {'transitions/s':>14} {'x naive':>8} {'target met':>11}")
    print(f"{'naive: gymnasium.make + lists':<40} {naive:>14,.0f} {'1.0':>8} {'-':>11}")
    all_met = True
    with tempfile.TemporaryDirectory() as scratch:
        runs = 0
        for num_envs in (1, 8, 32):
            for to_disk in (False, True):

                def run(num_envs: int = num_envs, to_disk: bool = to_disk) -> int:
                    nonlocal runs
                    runs += 1
                    out = Path(scratch) / f"run{runs}" if to_disk else None
                    summary = capture(
                        ENV_ID, "scripted", episodes=args.episodes, num_envs=num_envs, out=out
                    )
                    return summary.transitions

                rate = best_rate(run, args.repeats)
                met = rate >= TARGET
                all_met &= met
                where = "written to disk" if to_disk else "in memory"
                label = f"capture --num-envs {num_envs}, {where}"
                print(
                    f"{label:<40} {rate:>14,.0f} {rate / naive:>8.1f} {'yes' if met else 'NO':>11}"
                )
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
