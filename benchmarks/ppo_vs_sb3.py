"""PPO on CartPole-v1 against Stable-Baselines3 at RL Zoo's settings, and against CleanRL's
`ppo.py` at CleanRL's settings.

Targets (issue 5, then issue 9), one torch thread for every program, CartPole-v1:

(a) RL Zoo's CartPole settings (8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98,
    lambda 0.8, learning rate 1e-3 and clip 0.2 both decaying linearly, no entropy bonus,
    separate 64x64 tanh actor and critic), run by SB3 and by us:
    - our training steps per CPU-second at least 2 times SB3's (the median over seeds of
      each seed's ratio: a seed's runs are back to back on one core, so their ratio is
      what a host's drifting speed leaves alone);
    - our median env steps to a greedy 20-episode mean return of 475 (checked every 2,048
      steps) no more than SB3's.
(b) CleanRL ppo.py's settings (4 envs x 128 steps, 4 epochs of 4 mini-batches, learning
    rate 2.5e-4 decaying linearly, entropy 0.01, gamma 0.99, lambda 0.95, clip 0.2, value
    clipping 0.2, max grad norm 0.5), run by CleanRL's own `ppo.py` (given with --cleanrl;
    not part of Townlet) and by us: our training steps/s at least 2 times CleanRL's (its
    own wall-clock `SPS`, which starts after its set-up; the median of the seeds'
    ratios). Without --cleanrl, (b) runs ours only and says that CleanRL was not measured.

Every program runs in its own interpreter pinned to one core (--core, default 0, by
`os.sched_setaffinity` in the child), one after another, interleaved seed by seed, so
they never share a core with each other. Beside the wall-clock rates, the table shows the
training's process CPU time (`time.process_time` in the child around training, less
evaluation), and the whole child's CPU time (`resource.getrusage(RUSAGE_CHILDREN)`, start-up
and evaluation included): on a shared host the CPU time is the steadier figure.

Training time excludes evaluation. SB3's is `learn()`'s time less its evaluation callback;
ours is the training loop's (telemetry, metrics lines and periodic checkpoints included)
less the evaluations. Both are evaluated by the same code (`evaluate_policy`, 20 greedy
episodes, the same seeds) after every 2,048 steps. CleanRL is not evaluated (its own loop
has no evaluation).

Install the peers first; they are needed only here, not by Townlet:

    .venv/bin/pip install -c constraints/ci.txt stable-baselines3 tyro tensorboard
    git clone https://github.com/vwxyzjn/cleanrl /tmp/cleanrl-repo   # for cleanrl/ppo.py
    .venv/bin/python benchmarks/ppo_vs_sb3.py [--seeds 3] [--timesteps 100000] \
        [--cleanrl /tmp/cleanrl-repo/cleanrl/ppo.py] [--core 0]

Exit status 0 when every target measured is met, 1 otherwise (2: SB3 is not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

EVAL_EVERY_STEPS = 2_048
EVAL_EPISODES = 20
SOLVED = 475.0
SPEED_RATIO_TARGET = 2.0  # against SB3 (a) and against CleanRL (b)
STRETCH_RATIO = 3.0  # how far toward this the table says
EVAL_SEED_OFFSET = 1_000_003  # as townlet_strategies_ppo.trainer: never a training reset
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: RL Zoo's CartPole-v1 PPO settings: our defaults (only the budget and evaluation set here).
ZOO_OURS: dict[str, Any] = {
    "total_timesteps": 100_000,
    "eval_every": 8,  # updates of 8 x 32 steps: every 2,048 steps
    "eval_episodes": EVAL_EPISODES,
    "stop_return": None,  # time the whole budget
}

#: CleanRL ppo.py's defaults, in our names.
CLEANRL_OURS: dict[str, Any] = {
    "total_timesteps": 100_000,
    "num_envs": 4,
    "num_steps": 128,
    "update_epochs": 4,
    "minibatch_size": 128,
    "learning_rate": 2.5e-4,
    "lr_schedule": "linear",
    "clip_range": 0.2,
    "clip_schedule": "constant",
    "value_clip": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "max_grad_norm": 0.5,
    "eval_every": None,  # one greedy evaluation, at the end
    "eval_episodes": EVAL_EPISODES,
    "stop_return": None,
}


# ----------------------------------------------------------------------------- workers


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _greedy_mean_return(policy: Callable[[Any], Any], seed: int) -> float:
    from townlet_core.envs.evaluation import evaluate_policy

    result = evaluate_policy(
        "CartPole-v1", policy, episodes=EVAL_EPISODES, seed=seed + EVAL_SEED_OFFSET
    )
    return result.mean_return


def run_sb3(seed: int, timesteps: int) -> dict[str, Any]:
    """SB3 PPO at RL Zoo's CartPole settings, evaluated every 2,048 steps."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    _one_thread()

    def linear(start: float) -> Callable[[float], float]:
        return lambda progress_remaining: progress_remaining * start

    class GreedyEvaluation(BaseCallback):
        """After every 2,048 steps of training, 20 greedy episodes; times itself."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds = 0.0
            self.cpu_seconds = 0.0
            self.evaluations: list[tuple[int, float]] = []

        def evaluate(self) -> None:
            started, cpu = time.perf_counter(), time.process_time()
            model = self.model

            def greedy(observation: Any) -> Any:
                return model.predict(observation, deterministic=True)[0]

            self.evaluations.append((model.num_timesteps, _greedy_mean_return(greedy, seed)))
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.process_time() - cpu

        def _on_rollout_start(self) -> None:
            # called before each rollout, i.e. after the previous rollout's training
            steps = self.model.num_timesteps
            if steps and steps % EVAL_EVERY_STEPS == 0:
                self.evaluate()

        def _on_step(self) -> bool:
            return True

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    callback = GreedyEvaluation()
    started, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=timesteps, callback=callback)
    train_seconds = time.perf_counter() - started - callback.seconds
    train_cpu = time.process_time() - cpu - callback.cpu_seconds
    if not callback.evaluations or callback.evaluations[-1][0] != model.num_timesteps:
        callback.evaluate()  # the end of training, after the clock stopped
    return {
        "steps": model.num_timesteps,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "eval_seconds": callback.seconds,
        "evaluations": callback.evaluations,
    }


def run_ours(seed: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Our PPO in process, the training loop timed less its evaluations."""
    import townlet_strategies_ppo.plugin
    from townlet_core import Orchestrator, StrategyRegistry
    from townlet_core.runtime.metrics import read_metrics
    from townlet_strategies_ppo.trainer import PPOTrainer

    _one_thread()
    clock = {"run": 0.0, "eval": 0.0, "run_cpu": 0.0, "eval_cpu": 0.0}
    run, evaluate = PPOTrainer.run, PPOTrainer._record_evaluation

    def timed_run(self: PPOTrainer) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return run(self)
        finally:
            clock["run"] += time.perf_counter() - started
            clock["run_cpu"] += time.process_time() - cpu

    def timed_evaluation(self: PPOTrainer, update: int) -> Any:
        # the greedy episodes, and the best-so-far checkpoint they may lead to
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return evaluate(self, update)
        finally:
            clock["eval"] += time.perf_counter() - started
            clock["eval_cpu"] += time.process_time() - cpu

    PPOTrainer.run = timed_run  # type: ignore[method-assign]
    PPOTrainer._record_evaluation = timed_evaluation  # type: ignore[method-assign]
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo")
    orchestrator = Orchestrator(registry, quiet=True, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        result = orchestrator.run(
            "ppo",
            config={"runs_root": str(root / "runs"), "ppo": dict(settings)},
            seed=seed,
            run_dir=root / "run",
        )
        lines = read_metrics(root / "run" / "metrics.jsonl")
    per_update = int(settings.get("num_envs", 8)) * int(settings.get("num_steps", 32))
    evaluations = [
        (int(line["epoch"]) * per_update, float(line["eval_mean_return"]))
        for line in lines
        if "eval_mean_return" in line
    ]
    steps = len(lines) * per_update
    final = getattr(result, "eval_mean_return", None)
    if final is not None and (not evaluations or evaluations[-1][0] != steps):
        evaluations.append((steps, float(final)))
    return {
        "steps": steps,
        "train_seconds": clock["run"] - clock["eval"],
        "train_cpu_seconds": clock["run_cpu"] - clock["eval_cpu"],
        "eval_seconds": clock["eval"],
        "loop_seconds": sum(float(line["epoch_duration_sec"]) for line in lines),
        "evaluations": evaluations,
    }


def worker(program: str, seed: int, timesteps: int) -> dict[str, Any]:
    if program == "sb3":
        return run_sb3(seed, timesteps)
    settings = ZOO_OURS if program == "ours" else CLEANRL_OURS
    return run_ours(seed, {**settings, "total_timesteps": timesteps})


# ----------------------------------------------------------------------------- driver


def _pinned(core: int) -> Callable[[], None]:
    def pin() -> None:  # runs in the child, before it starts Python
        os.sched_setaffinity(0, {core})

    return pin


def _run_child(command: list[str], core: int, cwd: str | None = None) -> tuple[str, float]:
    """Run `command` pinned to `core` with one thread everywhere; (stdout, its CPU seconds)."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=cwd,
        preexec_fn=_pinned(core),
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{command[1]} failed with exit status {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout, cpu


def spawn(program: str, seed: int, timesteps: int, core: int) -> dict[str, Any]:
    """Run one of our workers in a fresh interpreter on `core`; its JSON result."""
    command = [sys.executable, __file__, "--worker", program, "--seed", str(seed)]
    stdout, cpu = _run_child([*command, "--timesteps", str(timesteps)], core)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["process_cpu_seconds"] = cpu
    result["rate"] = result["steps"] / result["train_seconds"]
    result["cpu_rate"] = result["steps"] / result["train_cpu_seconds"]
    return result


def spawn_cleanrl(script: Path, seed: int, timesteps: int, core: int) -> dict[str, Any]:
    """CleanRL's own ppo.py at its default settings (tracking off, CPU), `timesteps` long;
    its last `SPS:` line is its training rate (timed from after its set-up)."""
    command = [sys.executable, str(script.resolve()), "--seed", str(seed + 1)]
    command += ["--total-timesteps", str(timesteps), "--no-cuda", "--no-track"]
    command += ["--no-capture-video"]
    with tempfile.TemporaryDirectory() as folder:  # it writes runs/ (tensorboard) here
        stdout, cpu = _run_child(command, core, cwd=folder)
    rates = re.findall(r"^SPS: (\d+)$", stdout, flags=re.MULTILINE)
    if not rates:
        raise SystemExit(f"{script}: printed no 'SPS:' line; is this CleanRL's ppo.py?")
    iterations = timesteps // (4 * 128)
    return {"steps": iterations * 4 * 128, "rate": float(rates[-1]), "process_cpu_seconds": cpu}


def first_solved(evaluations: list[list[float]]) -> int | None:
    return next((int(steps) for steps, mean in evaluations if mean >= SOLVED), None)


def machine(sb3_version: str, core: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__}, stable-baselines3 {sb3_version}, 1 torch thread, "
        f"every program pinned to core {core}"
    )


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _steps_label(steps: int | None) -> str:
    return f"{steps:,}" if steps is not None else "never"


def _line(seed: int, program: str, run: dict[str, Any]) -> str:
    text = f"  seed {seed} {program:<14} {run['rate']:>8,.0f} steps/s"
    if "cpu_rate" in run:
        text += f" ({run['cpu_rate']:,.0f} per CPU-s; train {run['train_seconds']:.1f} s"
        text += f", eval {run['eval_seconds']:.1f} s"
    else:
        text += " (its own SPS"
    text += f"; process CPU {run['process_cpu_seconds']:.1f} s)"
    if "evaluations" in run:
        text += f"  475 at {_steps_label(run['solved_at'])}  final {run['evaluations'][-1][1]:.1f}"
    return text


def _verdict(ratio: float) -> str:
    met = "met" if ratio >= SPEED_RATIO_TARGET else "NOT met"
    stretch = "reached" if ratio >= STRETCH_RATIO else "not reached"
    return f"{met}; {STRETCH_RATIO:.0f}x {stretch}"


def _report_zoo(sb3: list[dict[str, Any]], ours: list[dict[str, Any]], big: float) -> bool:
    """Table (a); whether its targets are met. `big`: where a never-solving seed ranks."""

    def median_solved(runs: list[dict[str, Any]]) -> float:
        return _median([r["solved_at"] if r["solved_at"] is not None else big for r in runs])

    print("\n(a) RL Zoo settings: 8 envs x 32 steps, batch 256, 20 epochs")
    print(
        f"{'seed':>4} {'SB3 steps/s':>12} {'ours steps/s':>13} {'x SB3':>6} {'x SB3 (CPU)':>12}"
        f" {'SB3 to 475':>11} {'ours to 475':>12}"
    )
    for seed, (a, b) in enumerate(zip(sb3, ours, strict=True)):
        print(
            f"{seed:>4} {a['rate']:>12,.0f} {b['rate']:>13,.0f} {b['rate'] / a['rate']:>6.2f}"
            f" {b['cpu_rate'] / a['cpu_rate']:>12.2f}"
            f" {_steps_label(a['solved_at']):>11} {_steps_label(b['solved_at']):>12}"
        )
    sb3_rate, ours_rate = _median([r["rate"] for r in sb3]), _median([r["rate"] for r in ours])
    # each seed's two runs ran back to back on one core: their ratio is what the host's drift
    # leaves alone, so the verdict is the median of those, in training CPU time
    wall_ratio = _median([b["rate"] / a["rate"] for a, b in zip(sb3, ours, strict=True)])
    cpu_ratio = _median([b["cpu_rate"] / a["cpu_rate"] for a, b in zip(sb3, ours, strict=True)])
    sb3_solved, ours_solved = median_solved(sb3), median_solved(ours)
    print(
        f"{'med':>4} {sb3_rate:>12,.0f} {ours_rate:>13,.0f} {wall_ratio:>6.2f} {cpu_ratio:>12.2f}"
        f" {_steps_label(int(sb3_solved)) if sb3_solved < big else 'never':>11}"
        f" {_steps_label(int(ours_solved)) if ours_solved < big else 'never':>12}"
    )
    speed_met = cpu_ratio >= SPEED_RATIO_TARGET
    solved_met = ours_solved <= sb3_solved and ours_solved < big
    print(
        f"  speed: ours {cpu_ratio:.2f}x SB3 per training CPU-second, the median of the seeds' "
        f"ratios ({wall_ratio:.2f}x wall clock; target {SPEED_RATIO_TARGET:.0f}x): "
        f"{_verdict(cpu_ratio)}"
    )
    print(
        f"  sample efficiency: median steps to {SOLVED:.0f}, ours {ours_solved:,.0f} vs SB3 "
        f"{sb3_solved:,.0f} (target: ours <= SB3): {'met' if solved_met else 'NOT met'}"
    )

    return speed_met and solved_met


def _report_cleanrl(cleanrl: list[dict[str, Any]], peer: list[dict[str, Any]]) -> bool:
    """Table (b); whether its target is met (True when CleanRL was not run)."""
    print("\n(b) CleanRL ppo.py settings: 4 envs x 128 steps, 4 epochs x 4 mini-batches")
    clean_rate = _median([r["rate"] for r in cleanrl])
    clean_final = _median([r["evaluations"][-1][1] for r in cleanrl])
    if not peer:
        print(f"  ours {clean_rate:,.0f} steps/s (final greedy return {clean_final:.1f});")
        print("  CleanRL not measured (no --cleanrl): target not checked")
        return True
    else:
        print(f"{'seed':>4} {'CleanRL SPS':>12} {'ours steps/s':>13} {'x CleanRL':>10}")
        for seed, (a, b) in enumerate(zip(peer, cleanrl, strict=True)):
            print(
                f"{seed:>4} {a['rate']:>12,.0f} {b['rate']:>13,.0f} {b['rate'] / a['rate']:>10.2f}"
            )
        peer_rate = _median([r["rate"] for r in peer])
        # CleanRL reports wall-clock SPS only: the median of the seeds' wall-clock ratios
        ratio = _median([b["rate"] / a["rate"] for a, b in zip(peer, cleanrl, strict=True)])
        print(f"{'med':>4} {peer_rate:>12,.0f} {clean_rate:>13,.0f} {ratio:>10.2f}")
        print(f"  ours' final greedy return {clean_final:.1f} (median)")
        print(
            f"  speed: ours {ratio:.2f}x CleanRL, the median of the seeds' ratios (target "
            f"{SPEED_RATIO_TARGET:.0f}x): {_verdict(ratio)}"
        )
        return ratio >= SPEED_RATIO_TARGET


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--cleanrl", type=Path, help="path to CleanRL's cleanrl/ppo.py")
    parser.add_argument("--core", type=int, default=0, help="the core every program runs on")
    parser.add_argument("--worker", choices=("sb3", "ours", "cleanrl"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seed, args.timesteps)))
        return 0
    try:
        import stable_baselines3
    except ImportError:
        print(
            "stable-baselines3 is not installed; this benchmark runs it side by side with "
            "Townlet. Install it with:\n"
            "    .venv/bin/pip install -c constraints/ci.txt stable-baselines3",
            file=sys.stderr,
        )
        return 2
    if args.cleanrl is not None and not args.cleanrl.is_file():
        parser.error(f"--cleanrl {args.cleanrl}: no such file (CleanRL's cleanrl/ppo.py)")
    print(machine(stable_baselines3.__version__, args.core))
    print(f"CartPole-v1, {args.timesteps:,} steps, seeds 0..{args.seeds - 1}")
    if args.cleanrl is None:
        print("CleanRL: no --cleanrl PATH/TO/ppo.py given, so CleanRL is not run; (b) is ours only")
    print()
    results: dict[str, list[dict[str, Any]]] = {"sb3": [], "ours": [], "cleanrl": [], "peer": []}
    for seed in range(args.seeds):
        # interleaved: drift in machine load hits every program alike
        for program in ("sb3", "ours", "cleanrl"):
            outcome = spawn(program, seed, args.timesteps, args.core)
            outcome["solved_at"] = first_solved(outcome["evaluations"])
            results[program].append(outcome)
            label = {"sb3": "SB3", "ours": "ours (Zoo)", "cleanrl": "ours (CleanRL)"}[program]
            print(_line(seed, label, outcome), flush=True)
        if args.cleanrl is not None:
            outcome = spawn_cleanrl(args.cleanrl, seed, args.timesteps, args.core)
            results["peer"].append(outcome)
            print(_line(seed, "CleanRL ppo.py", outcome), flush=True)

    zoo_met = _report_zoo(results["sb3"], results["ours"], float(args.timesteps * 10))
    clean_met = _report_cleanrl(results["cleanrl"], results["peer"])
    ok = zoo_met and clean_met
    print("\nall targets measured met" if ok else "\ntarget(s) NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
