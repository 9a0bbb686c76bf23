"""Many agents, one policy (issue 14): the town's speed, and shared-policy PPO against the
way PettingZoo's own tutorials train one (SuperSuit's vector env under Stable-Baselines3).

Two measurements, each in its own interpreter, one after the other:

- environment: `townlet/Town-v0` with 2, 8 and 32 agents (size 11, 11 and 15), random
  legal actions: world steps and agent-steps per second through the raw parallel API,
  through Townlet's `AgentVectorEnv` (a row per agent, what training steps) and through
  SuperSuit's `pettingzoo_env_to_vec_env_v1` + `concat_vec_envs_v1` (what CleanRL's
  PettingZoo script and PettingZoo's SB3 tutorial step), one world each;
- training: PPO with one policy for every agent on the town (size 7, 4 agents, 16 rows:
  four worlds), the same rollout and update sizes (128 steps, mini-batches of 512, 4
  epochs, learning rate 3e-4, gamma 0.99, lambda 0.95, entropy 0.01, 64x64 tanh layers):
  `townlet train --strategy ppo` against SB3's `PPO("MultiInputPolicy")` on the SuperSuit
  vector env. Agent-steps per second of training (ours: the run's env steps over the
  rollout and update time its metrics lines record; SB3: `learn()`'s wall time). SB3 knows
  nothing of the town's action masks, so it samples illegal moves (carried out as waits);
  ours trains under them. Both use one torch thread.

Install the peers first; they are needed only here, not by Townlet:

    .venv/bin/pip install -c constraints/ci.txt stable-baselines3 supersuit
    .venv/bin/python benchmarks/multi_agent.py [--seconds 3] [--repeats 3] [--steps 65536]

Run it on an otherwise idle machine. Prints tables in the form of benchmarks/RESULTS.md.
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

ROOT = Path(__file__).resolve().parents[1]
POPULATIONS = ((2, 11), (8, 11), (32, 15))
PPO_TOWN = {"size": 7, "population": 4}
ROWS = 16


# ----------------------------------------------------------------------- environment


def _env_child(how: str, population: int, size: int, seconds: float) -> dict[str, float]:
    """Step one world for `seconds` with random legal actions; steps per second."""
    import numpy as np

    from townlet_core.envs.town import ACTION_COUNT, parallel_env

    rng = np.random.default_rng(0)
    kwargs = {"size": size, "population": population}

    def legal(masks: np.ndarray) -> np.ndarray:
        """A uniform random allowed action per row of (rows, 6) masks."""
        scores = rng.random(masks.shape) * masks
        return np.asarray(scores.argmax(axis=1), dtype=np.int64)

    steps = 0
    if how == "raw":
        env = parallel_env(**kwargs)
        _obs, infos = env.reset(seed=0)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            if not env.agents:
                _obs, infos = env.reset()
            masks = np.stack([infos[a]["action_mask"] for a in env.agents])
            actions = legal(masks)
            _obs, _r, _te, _tr, infos = env.step(dict(zip(env.agents, actions, strict=True)))
            steps += 1
    elif how == "townlet":
        from townlet_core.envs.make import make_vector_env
        from townlet_core.envs.settings import EnvSettings

        vector, _ = make_vector_env(EnvSettings(id="townlet/Town-v0", kwargs=kwargs), population)
        _obs, info = vector.reset(seed=0)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            masks = info.get("action_mask", np.ones((population, ACTION_COUNT)))
            _obs, _r, _te, _tr, info = vector.step(legal(np.asarray(masks)))
            steps += 1
    else:
        import supersuit as ss

        vector = ss.pettingzoo_env_to_vec_env_v1(parallel_env(**kwargs))
        vector = ss.concat_vec_envs_v1(vector, 1, num_cpus=0, base_class="gymnasium")
        _obs, infos = vector.reset(seed=0)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            masks = np.stack([i.get("action_mask", np.ones(ACTION_COUNT)) for i in infos])
            _obs, _r, _te, _tr, infos = vector.step(legal(masks))
            steps += 1
    elapsed = time.perf_counter() - started
    return {"world_steps_per_second": steps / elapsed}


def _run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def environment(seconds: float, repeats: int, peers: bool) -> None:
    print(
        "| agents | size | raw world steps/s | Townlet rows | SuperSuit | agent-steps/s "
        "(Townlet) | Townlet / raw | Townlet / SuperSuit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for population, size in POPULATIONS:
        rates: dict[str, list[float]] = {"raw": [], "townlet": [], "supersuit": []}
        for _ in range(repeats):
            for how in ("raw", "townlet", *(("supersuit",) if peers else ())):
                child = _run_child(["--child-env", how, str(population), str(size), str(seconds)])
                rates[how].append(child["world_steps_per_second"])
        raw, ours = statistics.median(rates["raw"]), statistics.median(rates["townlet"])
        theirs = statistics.median(rates["supersuit"]) if rates["supersuit"] else None
        peer = f"{theirs:,.0f}" if theirs else "not run"
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(
            f"| {population} | {size} | {raw:,.0f} | {ours:,.0f} | {peer} | "
            f"{ours * population:,.0f} | {ours / raw:.2f} | {ratio} |"
        )


# -------------------------------------------------------------------------- training


def _townlet_child(steps: int, seed: int, encoder: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        settings = {
            "env": "townlet/Town-v0",
            "env_kwargs": PPO_TOWN,
            "num_envs": ROWS,
            "num_steps": 128,
            "total_timesteps": steps,
            "minibatch_size": 512,
            "update_epochs": 4,
            "learning_rate": 3e-4,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "ent_coef": 0.01,
            "lr_schedule": "constant",
            "clip_schedule": "constant",
            "eval_every": None,
            "eval_episodes": 1,
            "stop_return": None,
            "torch_threads": 1,
            "network": {"encoder_hidden": encoder},
        }
        args = [
            sys.executable,
            "-m",
            "townlet_core.cli",
            "train",
            "--strategy",
            "ppo",
            "--run-dir",
            str(run),
            "--seed",
            str(seed),
            "--device",
            "cpu",
            "--quiet",
            "--json",
        ]
        for key, value in settings.items():
            text = value if isinstance(value, str) else json.dumps(value)
            args += ["--set", f"ppo.{key}={text}"]
        done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=tmp)
        if done.returncode != 0:
            raise SystemExit(f"townlet failed:\n{done.stderr[-3000:]}")
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        seconds = sum(line["rollout_sec"] + line["update_sec"] for line in lines)
        result = json.loads((run / "result.json").read_text())
        return {"agent_steps_per_second": result["env_steps"] / seconds}


def _sb3_child(steps: int, seed: int) -> dict[str, float]:
    import supersuit as ss
    import torch
    from stable_baselines3 import PPO

    from townlet_core.envs.town import parallel_env

    torch.set_num_threads(1)
    torch.manual_seed(seed)  # SuperSuit's SB3 vector env has no seed() for PPO(seed=...)
    vector = ss.pettingzoo_env_to_vec_env_v1(parallel_env(**PPO_TOWN))
    vector = ss.concat_vec_envs_v1(
        vector, ROWS // PPO_TOWN["population"], num_cpus=0, base_class="stable_baselines3"
    )
    model = PPO(
        "MultiInputPolicy",
        vector,
        n_steps=128,
        batch_size=512,
        n_epochs=4,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        device="cpu",
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
    )
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    return {"agent_steps_per_second": model.num_timesteps / (time.perf_counter() - started)}


#: Townlet's map encoder: its default (a 256-wide layer for the map and one for the
#: features, as the original Townlet network) and one about the size of SB3's (which
#: flattens map and features straight into its 64x64 layers).
ENCODERS = (256, 32)


def training(steps: int, repeats: int, peers: bool) -> None:
    rates: dict[str, list[float]] = {f"townlet-{e}": [] for e in ENCODERS}
    rates["sb3"] = []
    for seed in range(repeats):
        for encoder in ENCODERS:
            child = _run_child(["--child-train", f"townlet-{encoder}", str(steps), str(seed)])
            rates[f"townlet-{encoder}"].append(child["agent_steps_per_second"])
        if peers:
            child = _run_child(["--child-train", "sb3", str(steps), str(seed)])
            rates["sb3"].append(child["agent_steps_per_second"])
    names = {
        **{f"townlet-{e}": f"Townlet PPO, AgentVectorEnv, encoder {e}+{e}" for e in ENCODERS},
        "sb3": "SB3 PPO, SuperSuit vector env",
    }
    peer = statistics.median(rates["sb3"]) if rates["sb3"] else None
    print("| program | agent-steps/s (median) | runs | / SB3+SuperSuit |")
    print("|---|---|---|---|")
    for key, values in rates.items():
        if not values:
            continue
        median = statistics.median(values)
        ratio = f"{median / peer:.2f}" if peer else "-"
        runs = ", ".join(f"{x:,.0f}" for x in values)
        print(f"| {names[key]} | {median:,.0f} | {runs} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=65_536)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--child-env", nargs=4)
    parser.add_argument("--child-train", nargs=3)
    args = parser.parse_args()
    if args.child_env:
        how, population, size, seconds = args.child_env
        print(json.dumps(_env_child(how, int(population), int(size), float(seconds))))
        return
    if args.child_train:
        who, steps, seed = args.child_train
        if who.startswith("townlet-"):
            measured = _townlet_child(int(steps), int(seed), int(who.split("-")[1]))
        else:
            measured = _sb3_child(int(steps), int(seed))
        print(json.dumps(measured))
        return
    try:
        import stable_baselines3  # noqa: F401
        import supersuit  # noqa: F401

        peers = True
    except ImportError:
        peers = False
        print("SuperSuit or Stable-Baselines3 is not installed: the peers are not measured")
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    environment(args.seconds, args.repeats, peers)
    print()
    if not args.skip_training:
        training(args.steps, args.repeats, peers)


if __name__ == "__main__":
    main()
