"""Environments in worker processes against in-process stepping: steps per second.

For each environment (default CartPole-v1, LunarLander-v3, BipedalWalker-v3, and CartPole
made to compute 300, 1,000 and 3,000 us more a step, standing in for costlier simulators such
as MuJoCo's, which are not installed here) and each
number of workers W (default 1 and 2), Townlet's `make_vector_env` builds W copies stepped
in this process (`vector="sync"`, Gymnasium's SyncVectorEnv; the peer) and W copies each
in its own worker process (`vector="async"`, Gymnasium's AsyncVectorEnv with shared
memory, as `WorkerVectorEnv`). Both step the same seeded random actions for --seconds of
wall time after a warm-up; the rate is environment steps (copies x vector steps) per second.
Printed: the rates, async / sync, and the scaling efficiency (async / sync / W). The single
step cost of each env (`step_seconds`, what `vector: auto` measures) is printed too.

The issue's target (13): async at least 1.6 times sync with 2 workers, on an env costing at
least 200 us a step. Repeats (--repeats, default 3) alternate sync and async, and the
medians are reported.

    .venv/bin/python benchmarks/async_vs_sync.py [--envs CartPole-v1,LunarLander-v3,...]
        [--workers 1,2] [--seconds 3] [--repeats 3]

Exit status 0 when the target is met for every env of 200 us or more measured, else 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time
from typing import Any

import gymnasium
import numpy as np

from townlet_core.envs.make import make_vector_env, step_seconds
from townlet_core.envs.settings import EnvSettings

TARGET_RATIO = 1.6
COSTLY_STEP_SECONDS = 200e-6
BUSY_ENV = "TownletBench/BusyCartPole-v0"


def _busy_cartpole(busy_us: float = 300.0, **kwargs: Any) -> Any:
    """CartPole that computes for `busy_us` microseconds a step: a stand-in for a costly
    simulator (the CPU is busy, as in a physics step, not asleep)."""

    class Busy(gymnasium.Wrapper):  # type: ignore[type-arg]
        def step(self, action: Any) -> Any:
            end = time.perf_counter() + busy_us * 1e-6
            while time.perf_counter() < end:
                pass
            return self.env.step(action)

    return Busy(gymnasium.make("CartPole-v1", **kwargs))


def _settings(env: str) -> str | EnvSettings:
    """`busy:N` is BUSY_ENV at N us a step; anything else a Gymnasium id."""
    if env.startswith("busy:"):
        return EnvSettings(id=BUSY_ENV, kwargs={"busy_us": float(env.split(":", 1)[1])})
    return env


def steps_per_second(env_id: str, workers: int, vector: str, seconds: float) -> float:
    """Environment steps per second of `workers` copies of `env_id` stepped `vector`."""
    env, how = make_vector_env(_settings(env_id), workers, vector=vector)  # type: ignore[arg-type]
    assert how in ("sync", "async"), how
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(256)]
        for action in actions[:32]:  # warm-up: workers started, caches filled
            env.step(action)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.step(actions[steps % len(actions)])
            steps += 1
        return steps * workers / (time.perf_counter() - start)
    finally:
        env.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--envs",
        default="CartPole-v1,LunarLander-v3,BipedalWalker-v3,busy:300,busy:1000,busy:3000",
        help="Gymnasium ids, and busy:N for CartPole computing N us more a step",
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    envs = [e for e in args.envs.split(",") if e]
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"gymnasium {gymnasium.__version__}, numpy {np.__version__}; {args.seconds:g} s a "
        f"measurement, median of {args.repeats}"
    )
    print(
        f"{'env':<18} {'step us':>8} {'workers':>7} {'sync steps/s':>13} "
        f"{'async steps/s':>14} {'async/sync':>10} {'efficiency':>10}"
    )
    gymnasium.register(BUSY_ENV, entry_point=_busy_cartpole, max_episode_steps=500)
    met, costly = True, 0
    for env_id in envs:
        settings = _settings(env_id)
        if isinstance(settings, EnvSettings):
            make_one: Any = functools.partial(gymnasium.make, settings.id, **settings.kwargs)
        else:
            make_one = functools.partial(gymnasium.make, settings)
        cost = step_seconds(make_one, 300)
        for workers in worker_counts:
            rates: dict[str, list[float]] = {"sync": [], "async": []}
            for _ in range(args.repeats):
                for vector in ("sync", "async"):
                    rates[vector].append(steps_per_second(env_id, workers, vector, args.seconds))
            sync, in_workers = (statistics.median(rates[v]) for v in ("sync", "async"))
            ratio = in_workers / sync
            print(
                f"{env_id:<18} {cost * 1e6:>8.0f} {workers:>7} {sync:>13.0f} "
                f"{in_workers:>14.0f} {ratio:>10.2f} {ratio / workers:>10.2f}"
            )
            if workers == 2 and cost >= COSTLY_STEP_SECONDS:
                costly += 1
                met = met and ratio >= TARGET_RATIO
    verdict = ("met" if met else "NOT met") if costly else "not measured (no such env)"
    print(
        f"target: async >= {TARGET_RATIO} x sync with 2 workers on envs of "
        f">= {COSTLY_STEP_SECONDS * 1e6:.0f} us a step: {verdict}"
    )
    return 0 if met and costly else 1


if __name__ == "__main__":
    raise SystemExit(main())
