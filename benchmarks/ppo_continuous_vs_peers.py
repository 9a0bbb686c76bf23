"""PPO on continuous control: Townlet's PPO against Stable-Baselines3's and CleanRL's
`ppo_continuous_action.py`, at CleanRL's MuJoCo settings (issue 11, Performance).

The settings, for all three: 1 env x 2,048 steps, 10 epochs of 32 mini-batches (64
transitions), Adam learning rate 3e-4 (eps 1e-5) decaying linearly per update, gamma 0.99,
GAE lambda 0.95, clip 0.2 (constant), value clipping 0.2, no entropy bonus, value coefficient
0.5, gradient norm 0.5, advantages normalised per mini-batch, observations normalised
(clipped to +-10) and rewards scaled by the running std of the discounted return (clipped
to +-10), separate 64x64 tanh actor and critic with orthogonal initialisation and a
state-independent log std starting at 0, actions clipped to the bounds.

Targets, 3 seeds, one torch thread for every program:
- final return: our median at least the peers' median (SB3's and CleanRL's runs together);
- speed: our training steps per second at least 1.5 times SB3's (medians); judged on steps
  per second of training CPU time (the steadier figure on a shared host), the wall-clock
  ratio printed beside it.

Final return, the same rule for all three: the mean return of 20 greedy episodes (the
Gaussian's mean action, observation statistics frozen) by `townlet_core`'s
`evaluate_policy`, seeded seed + 1,000,003 as our trainer's own evaluation, once, after
training (outside the clock).

Where the peers cannot be set exactly like CleanRL:
- SB3's value loss is the mean squared error without CleanRL's factor 1/2, so SB3 runs
  with vf_coef 0.25 (the same objective as CleanRL's 0.5); its value clipping keeps only
  the clipped prediction (CleanRL and ours take the larger of the clipped and unclipped
  losses). SB3's schedule is called with the progress *after* each rollout, so it is
  given lr(p) = 3e-4 * (p + 1/updates), which is CleanRL's 3e-4 * (1 - (k-1)/updates) at
  update k. SB3 (DummyVecEnv) resets within the step and bootstraps from the final
  observation on truncation; ours resets on the next step (a step not trained on) and
  bootstraps too; CleanRL treats a truncation as a termination (Pendulum never
  terminates: every episode ends by truncation at 200 steps), which is why its script is
  known not to learn Pendulum-v1 (vwxyzjn/cleanrl issues 504 and 198). So the final-return
  table also prints our median against each peer's alone.
- CleanRL's script targets Gymnasium 0.29. Under Gymnasium 1.x it is run unchanged except
  for one argument, patched in memory before the script is run (`adapt_gymnasium`):
  `TransformObservation` requires an `observation_space` argument in 1.x, so it is given
  a default of None (keep the wrapped env's space, as 0.29 did). Also under 1.x, but left
  as is: its vector env resets in the next step, so one transition per episode (the reset
  step) is trained on with a reward of 0, and its `final_info` episode printing never
  fires (it does not affect training).

A second figure, a diagnostic only: the mean return of the last training episodes (SB3's
and CleanRL's last 10, ours the last update's, about 10 on Pendulum; sampled actions, raw
rewards), which tells a policy that did not learn from an evaluation that went wrong.

Timing excludes evaluation and imports: SB3's is `learn()`; ours is the training loop
(telemetry and a checkpoint every 10 updates included); CleanRL's is its whole script run
by `runpy` after its imports are loaded (its set-up, tensorboard writes included; its own
`SPS` line is printed beside it); for SB3 and ours the lines also split training into
rollouts and updates. Each program runs in its own interpreter pinned to one
core (--core), interleaved seed by seed in an order rotated each seed; the table shows
wall-clock and CPU time (`time.process_time` around training) and the whole child's CPU
time.

Install the peers first; they are needed only here, not by Townlet:

    .venv/bin/pip install -c constraints/ci.txt stable-baselines3 tyro tensorboard
    # CleanRL's script, never committed here (e.g. from a clone of vwxyzjn/cleanrl):
    cp cleanrl-repo/cleanrl/ppo_continuous_action.py /tmp/cleanrl/
    .venv/bin/pip install mujoco imageio   # only for --env HalfCheetah-v5 (outside CI)
    .venv/bin/python benchmarks/ppo_continuous_vs_peers.py \
        --cleanrl /tmp/cleanrl/ppo_continuous_action.py [--env Pendulum-v1] [--seeds 3] \
        [--timesteps 200000] [--core 0] [--programs sb3,cleanrl,ours]

Exit status 0 when every target measured is met, 1 otherwise (2: SB3 is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_vs_sb3 import _run_child, machine, run_ours  # the discrete benchmark's

EVAL_EPISODES = 20
#: Training episodes behind the diagnostic "last episodes" mean (ours: the last update's,
#: about 10 Pendulum episodes), stochastic actions, raw rewards.
LAST_EPISODES = 10
EVAL_SEED_OFFSET = 1_000_003  # as townlet_strategies_ppo.trainer: never a training reset
SPEED_RATIO_TARGET = 1.5  # our steps/s against SB3's
PROGRAMS = ("sb3", "cleanrl", "ours")
LABELS = {"sb3": "SB3", "cleanrl": "CleanRL", "ours": "Townlet"}
DEFAULT_TIMESTEPS = {"Pendulum-v1": 200_000, "HalfCheetah-v5": 1_000_000}

NUM_STEPS = 2_048
MINIBATCH = 64  # 2,048 / 32 mini-batches
LEARNING_RATE = 3e-4
GAMMA = 0.99

#: CleanRL's MuJoCo defaults in our names (budget, env and evaluation set per run).
OURS: dict[str, Any] = {
    "num_envs": 1,
    "num_steps": NUM_STEPS,
    "update_epochs": 10,
    "minibatch_size": MINIBATCH,
    "learning_rate": LEARNING_RATE,
    "lr_schedule": "linear",
    "clip_range": 0.2,
    "clip_schedule": "constant",
    "value_clip": 0.2,
    "gamma": GAMMA,
    "gae_lambda": 0.95,
    "advantage_normalization": "minibatch",
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "normalize_observations": True,
    "normalize_rewards": True,
    "action_mapping": "clip",
    "network": {"hidden_sizes": [64, 64], "activation": "tanh", "log_std_init": 0.0},
    "torch_threads": 1,
    "eval_every": None,  # one greedy evaluation, at the end
    "eval_episodes": EVAL_EPISODES,
    "stop_return": None,  # always the whole budget
}


# ----------------------------------------------------------------------------- workers


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def greedy_mean_return(env_id: str, policy: Callable[[Any], Any], seed: int) -> float:
    """20 greedy episodes by the code our trainer evaluates with, on the same seeds."""
    from townlet_core.envs.evaluation import evaluate_policy

    result = evaluate_policy(env_id, policy, episodes=EVAL_EPISODES, seed=seed + EVAL_SEED_OFFSET)
    return result.mean_return


def run_sb3(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    """SB3's PPO at CleanRL's settings, VecNormalize as CleanRL's wrappers."""
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    _one_thread()
    updates = steps // NUM_STEPS

    def learning_rate(progress_remaining: float) -> float:
        # SB3 passes the progress after the rollout: at update k, 1 - k/updates
        return min(LEARNING_RATE, LEARNING_RATE * (progress_remaining + 1.0 / updates))

    env = VecNormalize(
        make_vec_env(env_id, n_envs=1, seed=seed),
        norm_obs=True,
        norm_reward=True,
        clip_obs=10.0,
        clip_reward=10.0,
        gamma=GAMMA,
        epsilon=1e-8,
    )
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=NUM_STEPS,
        batch_size=MINIBATCH,
        n_epochs=10,
        learning_rate=learning_rate,
        gamma=GAMMA,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        normalize_advantage=True,
        ent_coef=0.0,
        vf_coef=0.25,  # SB3's value loss has no 1/2: the same objective as CleanRL's 0.5
        max_grad_norm=0.5,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": 0.0,
            "ortho_init": True,
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    phases = {"rollout_seconds": 0.0, "update_seconds": 0.0}
    collect, train = model.collect_rollouts, model.train

    def timed(method: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def run(*arguments: Any, **keywords: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*arguments, **keywords)
            finally:
                phases[phase] += time.perf_counter() - began

        return run

    model.collect_rollouts = timed(collect, "rollout_seconds")  # type: ignore[method-assign]
    model.train = timed(train, "update_seconds")  # type: ignore[method-assign]
    started, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu

    def greedy(observation: Any) -> Any:
        return model.predict(env.normalize_obs(observation), deterministic=True)[0]

    last = [float(episode["r"]) for episode in model.ep_info_buffer][-LAST_EPISODES:]
    return {
        "steps": model.num_timesteps,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "final_return": greedy_mean_return(env_id, greedy, seed),
        "last_episodes": float(np.mean(last)),
        **phases,
    }


def adapt_gymnasium(gym: Any) -> list[str]:
    """Patch, in this process only, what CleanRL's script calls with Gymnasium 0.29's
    signatures; the list of what was changed (empty under 0.29)."""
    changes = []
    original = gym.wrappers.TransformObservation
    space = inspect.signature(original.__init__).parameters.get("observation_space")
    if space is not None and space.default is inspect.Parameter.empty:

        def transform_observation(env: Any, func: Any, observation_space: Any = None) -> Any:
            return original(env, func, observation_space)

        gym.wrappers.TransformObservation = transform_observation
        changes.append("TransformObservation(observation_space=None)")
    return changes


def _wrapper(env: Any, kind: type) -> Any:
    while not isinstance(env, kind):
        env = env.env
    return env


def run_cleanrl(script: Path, env_id: str, seed: int, steps: int) -> dict[str, Any]:
    """CleanRL's script run by runpy (its defaults but the env, budget, seed, no CUDA);
    then its agent's mean action, with its NormalizeObservation statistics frozen."""
    import gymnasium as gym
    import numpy as np
    import torch
    import tyro  # noqa: F401  (imported before the clock, as for the others)
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    _one_thread()
    # the first optimiser built imports torch._dynamo (about 1-2 s here): before the clock,
    # as SB3's and ours are built before theirs starts
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    changes = adapt_gymnasium(gym)
    sys.argv = [str(script), "--env-id", env_id, "--seed", str(seed + 1)]
    sys.argv += ["--total-timesteps", str(steps), "--no-cuda", "--no-track"]
    sys.argv += ["--no-capture-video"]
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:  # it writes runs/ (tensorboard) here
        os.chdir(folder)
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(printed):
            names = runpy.run_path(str(script), run_name="__main__")
        train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu
    rates = re.findall(r"^SPS: (\d+)$", printed.getvalue(), flags=re.MULTILINE)
    if not rates or "agent" not in names:
        raise SystemExit(f"{script}: no agent and no 'SPS:' line; is it ppo_continuous_action.py?")
    agent, envs = names["agent"], names["envs"]
    statistics_ = _wrapper(envs.envs[0], gym.wrappers.NormalizeObservation)
    mean, var = statistics_.obs_rms.mean, statistics_.obs_rms.var
    scale = np.sqrt(var + statistics_.epsilon)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    episodes = _wrapper(envs.envs[0], gym.wrappers.RecordEpisodeStatistics).return_queue

    def greedy(observation: Any) -> Any:
        features = np.clip((observation - mean) / scale, -10.0, 10.0)
        with torch.no_grad():
            action = agent.actor_mean(torch.as_tensor(features, dtype=torch.float32))
        return np.clip(action.numpy(), low, high)

    return {
        "steps": (steps // NUM_STEPS) * NUM_STEPS,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "own_sps": float(rates[-1]),
        "adaptations": changes,
        "final_return": greedy_mean_return(env_id, greedy, seed),
        "last_episodes": float(np.mean(list(episodes)[-LAST_EPISODES:])),
    }


def run_townlet(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    """Our PPO in process (the discrete benchmark's runner), its own final evaluation;
    the last update's telemetry line kept for its training episodes' mean return."""
    from townlet_strategies_ppo.trainer import PPOTrainer

    update, last_line = PPOTrainer._update, {}
    phases = {"rollout_seconds": 0.0, "update_seconds": 0.0}

    def kept_update(self: PPOTrainer, number: int, bar: Any) -> dict[str, Any]:
        line = update(self, number, bar)
        last_line.update(line)
        phases["rollout_seconds"] += float(line.get("rollout_sec", 0.0))
        phases["update_seconds"] += float(line.get("update_sec", 0.0))
        return line

    PPOTrainer._update = kept_update  # type: ignore[method-assign]
    run = run_ours(seed, {**OURS, "env": env_id, "total_timesteps": steps})
    if not run["evaluations"]:
        raise SystemExit("our run reported no final evaluation (eval_mean_return)")
    last = last_line.get("episode_return_mean")
    return {
        **run,
        **phases,
        "final_return": float(run["evaluations"][-1][1]),
        "last_episodes": None if last is None else float(last),
    }


def worker(program: str, env_id: str, seed: int, steps: int, script: Path | None) -> Any:
    if program == "sb3":
        return run_sb3(env_id, seed, steps)
    if program == "cleanrl":
        assert script is not None
        return run_cleanrl(script, env_id, seed, steps)
    return run_townlet(env_id, seed, steps)


# ----------------------------------------------------------------------------- driver


def spawn(program: str, args: argparse.Namespace, seed: int, steps: int) -> dict[str, Any]:
    """One worker in a fresh interpreter pinned to --core; its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", program]
    command += ["--seed", str(seed)]
    command += ["--env", args.env, "--timesteps", str(steps)]
    if args.cleanrl is not None:
        command += ["--cleanrl", str(args.cleanrl.resolve())]
    with tempfile.TemporaryDirectory() as folder:  # what they write (MuJoCo's log) goes here
        stdout, cpu = _run_child(command, args.core, cwd=folder)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["process_cpu_seconds"] = cpu
    result["rate"] = result["steps"] / result["train_seconds"]
    result["cpu_rate"] = result["steps"] / result["train_cpu_seconds"]
    return result


def _commit() -> str:
    """The commit measured, and whether the work tree differed from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = ["git", "-C", str(root), *arguments]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _line(seed: int, program: str, run: dict[str, Any]) -> str:
    text = f"  seed {seed} {LABELS[program]:<8} final {run['final_return']:>8.1f}"
    text += f"  {run['rate']:>6,.0f} steps/s ({run['cpu_rate']:,.0f} per CPU-s;"
    text += f" train {run['train_seconds']:.1f} s, CPU {run['train_cpu_seconds']:.1f} s;"
    text += f" process CPU {run['process_cpu_seconds']:.1f} s)"
    if run.get("last_episodes") is not None:
        text += f"  last training episodes {run['last_episodes']:.1f}"
    if "own_sps" in run:
        text += f"  its own SPS {run['own_sps']:,.0f}"
    if "rollout_seconds" in run:
        text += f"  rollouts {run['rollout_seconds']:.1f} s, updates {run['update_seconds']:.1f} s"
    return text


def report(results: dict[str, list[dict[str, Any]]]) -> bool:
    """The table, the ratios and the verdicts; whether every target measured is met."""
    programs = [p for p in PROGRAMS if results[p]]
    print(
        f"\n{'':>6}"
        + "".join(f" | {LABELS[p] + ' return':>15} {'steps/s':>8} {'/CPU-s':>7}" for p in programs)
    )
    seeds = len(results[programs[0]])
    for seed in range(seeds):
        cells = "".join(
            f" | {r['final_return']:>15.1f} {r['rate']:>8,.0f} {r['cpu_rate']:>7,.0f}"
            for r in (results[p][seed] for p in programs)
        )
        print(f"{seed:>6}{cells}")
    medians = {
        p: {k: _median([r[k] for r in results[p]]) for k in ("final_return", "rate", "cpu_rate")}
        for p in programs
    }
    cells = "".join(
        f" | {m['final_return']:>15.1f} {m['rate']:>8,.0f} {m['cpu_rate']:>7,.0f}"
        for m in (medians[p] for p in programs)
    )
    print(f"{'median':>6}{cells}")
    ok = True
    if "ours" in medians and "sb3" in medians:
        cpu_ratio = medians["ours"]["cpu_rate"] / medians["sb3"]["cpu_rate"]
        wall_ratio = medians["ours"]["rate"] / medians["sb3"]["rate"]
        met = cpu_ratio >= SPEED_RATIO_TARGET
        ok &= met
        print(
            f"  speed: Townlet {cpu_ratio:.2f}x SB3 per CPU-s ({wall_ratio:.2f}x wall-clock); "
            f"target {SPEED_RATIO_TARGET}x: {'met' if met else 'NOT met'}"
        )
    if "ours" in medians and "cleanrl" in medians:
        cpu_ratio = medians["ours"]["cpu_rate"] / medians["cleanrl"]["cpu_rate"]
        wall_ratio = medians["ours"]["rate"] / medians["cleanrl"]["rate"]
        print(f"  speed: Townlet {cpu_ratio:.2f}x CleanRL per CPU-s ({wall_ratio:.2f}x wall)")
    peers = [r["final_return"] for p in ("sb3", "cleanrl") for r in results[p]]
    if "ours" in medians and peers:
        peer_median, ours = _median(peers), medians["ours"]["final_return"]
        met = ours >= peer_median
        ok &= met
        print(
            f"  final return: Townlet median {ours:.1f} vs the peers' median {peer_median:.1f}"
            f" ({len(peers)} runs); target Townlet >= peers: {'met' if met else 'NOT met'}"
        )
        for peer in ("sb3", "cleanrl"):  # the stricter comparison, not a target
            if peer in medians:
                theirs = medians[peer]["final_return"]
                print(
                    f"    against {LABELS[peer]}'s median alone: {ours:.1f} vs {theirs:.1f}"
                    f" ({'at least' if ours >= theirs else 'below'})"
                )
    if "ours" not in medians:
        print("  Townlet not run: targets not checked")
        ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1", help="Pendulum-v1 or HalfCheetah-v5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, help="default: 200k Pendulum, 1M HalfCheetah")
    parser.add_argument("--cleanrl", type=Path, help="CleanRL's ppo_continuous_action.py")
    parser.add_argument("--core", type=int, default=0, help="the core every program runs on")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help="which to run")
    parser.add_argument("--worker", choices=PROGRAMS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    timesteps = args.timesteps or DEFAULT_TIMESTEPS.get(args.env, 200_000)
    steps = (timesteps // NUM_STEPS) * NUM_STEPS  # whole rollouts, as CleanRL counts them
    if args.worker:
        print(json.dumps(worker(args.worker, args.env, args.seed, steps, args.cleanrl)))
        return 0
    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown or not programs:
        parser.error(f"--programs: {', '.join(unknown) or 'none'}; choose from sb3,cleanrl,ours")
    try:
        import stable_baselines3
    except ImportError:
        print(
            "stable-baselines3 is not installed; this benchmark runs it side by side with "
            "Townlet. Install it with:\n"
            "    .venv/bin/pip install -c constraints/ci.txt stable-baselines3 tyro tensorboard",
            file=sys.stderr,
        )
        return 2
    if args.cleanrl is None:
        programs = [p for p in programs if p != "cleanrl"]
        print("CleanRL: no --cleanrl PATH/TO/ppo_continuous_action.py given, so not run")
    elif not args.cleanrl.is_file():
        parser.error(f"--cleanrl {args.cleanrl}: no such file (ppo_continuous_action.py)")
    print(machine(stable_baselines3.__version__, args.core))
    print(f"code: {_commit()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.env}, {steps:,} steps ({steps // NUM_STEPS} updates), seeds 0..{args.seeds - 1}")
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in PROGRAMS}
    for seed in range(args.seeds):
        # interleaved, and the order rotated each seed: a drift in the host's load (which
        # moves even the CPU-time rates here) favours no program
        turn = seed % len(programs)
        for program in programs[turn:] + programs[:turn]:
            outcome = spawn(program, args, seed, steps)
            results[program].append(outcome)
            print(_line(seed, program, outcome), flush=True)
    adaptations = {a for r in results["cleanrl"] for a in r["adaptations"]}
    if adaptations:
        print(f"CleanRL adapted to this Gymnasium in memory: {', '.join(sorted(adaptations))}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = report(results)
    print("\nall targets measured met" if ok else "\ntarget(s) NOT met (or not measured)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
