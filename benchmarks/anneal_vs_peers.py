"""Anneal (BC, then PPO kept near the clone) against its peers, at one environment-step budget.

For one task (a YAML file in benchmarks/tasks/) and N seeds (default 5), five configurations:

- `bc`: the bc strategy alone, on demonstrations it captures from the scripted expert;
- `ppo`: Townlet PPO from scratch;
- `sb3`: Stable-Baselines3 PPO from scratch, the same hyperparameters (mapping below);
- `naive`: anneal, BC then PPO with `critic_warmup_rollouts: 0` and `bc_weight: 0` (the
  naive warm start: a fresh critic and nothing keeping the policy near the clone);
- `anneal`: anneal, BC then PPO with the task's `anneal_ppo` overrides on top of PPO's
  defaults for a warm start (critic warm-up auto; in lunarlander.yaml nothing else: the
  built-in task; other tasks add a bc_weight schedule).

Every PPO run gets the task's `ppo` section (the same total_timesteps, envs, steps, epochs,
mini-batches, learning rate, gamma, lambda, entropy bonus, eval_every in updates and
eval_episodes; stop_return null, so every run spends its whole budget). The Townlet runs
are `townlet train -c CONFIG --run-dir DIR --json -q --seed S` subprocesses (the console
script beside sys.executable); SB3 runs in a subprocess of this script (`--worker sb3`).
Each child gets one torch thread (OMP/MKL/OpenBLAS threads 1); --jobs runs run at once.

What is measured, per configuration, from greedy evaluations of eval_episodes episodes:
- curves: (environment steps, greedy mean return). Townlet's come from metrics.jsonl lines
  with `eval_mean_return`, at steps = epoch x num_envs x num_steps (one line per update;
  the final evaluation from result.json is added when it is not on a line). In naive and
  anneal runs the PPO stage's lines are RUN_DIR/stages/NN-cycle1-ppo/metrics.jsonl, and
  the steps the BC stage's capture consumed (`transitions` of its dataset.json) are added
  to every point; their curves start with the BC stage's return at those steps (the
  clone they fine-tune, which counts toward the steps to target). BC alone is one point:
  its greedy return at its capture steps (drawn as a flat line).
- SB3 is evaluated greedily (`model.predict(obs, deterministic=True)`) by the same code as
  Townlet's trainer, `townlet_core.envs.evaluation.evaluate_policy`, with the same seed
  (seed + 1,000,003) and episode count, before the rollout that follows every eval_every-th
  update, and once at the end.
- the final greedy return (median, min-max); the steps to the target (the first
  evaluation >= target; the median counts a seed that never reached it as infinite and
  says how many reached it); for naive and anneal, the lowest evaluation of the PPO stage
  against that run's BC-stage return (the warm start it fine-tuned).

The issue's targets, printed met/not met with the figures:
- anneal's median steps to the target at most half of Townlet PPO-from-scratch's;
- on every seed, anneal's lowest PPO-stage return not below its BC return by more than the
  default `return` guardrail allows (lowest >= bc - max(tolerance |bc|, margin)).

How the Townlet PPO settings map onto SB3's PPO (unlisted ones take PPOConfig's defaults):
- n_envs, n_steps, batch_size, n_epochs, gamma, gae_lambda, ent_coef, max_grad_norm and
  target_kl by name (SB3 stops an update's epochs at 1.5 x target_kl, Townlet at
  target_kl); advantage_normalization minibatch is SB3's normalize_advantage (none turns it
  off; batch has no SB3 counterpart and is refused).
- vf_coef is halved: SB3's value loss is the mean squared error, Townlet's 0.5 times it.
- value_clip is clip_range_vf; SB3 keeps only the clipped prediction's loss, Townlet the
  larger of the clipped and unclipped losses.
- lr_schedule / clip_schedule linear: SB3 calls its schedule with the progress left after
  each rollout, so it gets x(p) = x0 (p + 1/updates), Townlet's x0 (1 - (k-1)/updates) at
  update k.
- network: MlpPolicy with net_arch pi = vf = hidden_sizes and the same activation
  (separate actor and critic, orthogonal initialisation, Adam eps 1e-5, as Townlet's);
  shared_trunk has no counterpart here and is refused.
- normalize_observations / normalize_rewards: VecNormalize (observations clipped to +-10;
  evaluation reads the frozen statistics). env_kwargs go to gymnasium.make; wrappers and
  max_episode_steps are refused (not mapped).
- vector envs: SB3's DummyVecEnv resets within the step and bootstraps from the final
  observation on truncation; Townlet resets on the next step and bootstraps too.

Install the peer first (a benchmark-only dependency, not Townlet's):

    .venv/bin/pip install -c constraints/ci.txt stable-baselines3

Run (the full LunarLander task is hours of CPU: 5 configurations x 5 seeds):

    .venv/bin/python benchmarks/anneal_vs_peers.py --task benchmarks/tasks/lunarlander.yaml \\
        [--seeds 5] [--configs bc,ppo,sb3,naive,anneal] [--out DIR] [--jobs 2]
    # seconds, to check the script itself:
    .venv/bin/python benchmarks/anneal_vs_peers.py \\
        --task benchmarks/tasks/cartpole-smoke.yaml --seeds 1 --out /tmp/anneal-smoke

Runs made apart (another core, another session) are reported as one, with nothing run:

    .venv/bin/python benchmarks/anneal_vs_peers.py --merge A/curves.json B/curves.json --out C

--out DIR (default runs/anneal-vs-peers) gets runs/CONFIG-seedS/ (each run's folder,
replaced when run again), curves.json and, when matplotlib is importable,
return_vs_steps.png (median curve and min-max band per configuration, the target line).
Exit status 0 when both targets are met, 1 when not (or not checked: anneal or ppo not
run), 2 when sb3 is asked for and stable-baselines3 is not installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIGS = ("bc", "ppo", "sb3", "naive", "anneal")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TASK_KEYS = ("env", "target", "bc", "accuracy_threshold", "ppo", "anneal_ppo")

Curve = list[tuple[int, float]]


class TaskError(Exception):
    """A task file that cannot be run; the message says what to change."""


# ----------------------------------------------------------------------------- the task


def load_task(path: Path) -> dict[str, Any]:
    """The task file's mapping, its required keys checked (so a typo fails before hours)."""
    try:
        task = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TaskError(f"--task {path}: cannot read it as YAML ({error})") from error
    if not isinstance(task, dict):
        raise TaskError(f"--task {path}: expected a mapping with keys {', '.join(TASK_KEYS)}")
    missing = [key for key in TASK_KEYS if key not in task]
    if missing:
        raise TaskError(f"--task {path}: missing {', '.join(missing)} (see lunarlander.yaml)")
    for key in ("bc", "ppo", "anneal_ppo"):
        if not isinstance(task[key], dict):
            raise TaskError(f"--task {path}: {key} must be a mapping of overrides")
    return task


def ppo_settings(task: Mapping[str, Any]) -> dict[str, Any]:
    """The PPO section every PPO run shares, with the task's env."""
    return {"env": task["env"], **task["ppo"]}


def bc_settings(task: Mapping[str, Any]) -> dict[str, Any]:
    """The BC overrides: capture in the task's env, evaluate as many episodes as PPO does."""
    bc = dict(task["bc"])
    bc["capture"] = {**bc.get("capture", {}), "env": task["env"]}
    bc.setdefault("eval_episodes", int(task["ppo"].get("eval_episodes", 20)))
    return bc


def anneal_config(task: Mapping[str, Any], extra_ppo: Mapping[str, Any]) -> dict[str, Any]:
    """An anneal run: BC (cycle 0), then PPO with the shared settings and `extra_ppo`."""
    return {
        "strategy": "anneal",
        "anneal": {
            "accuracy_threshold": task["accuracy_threshold"],
            "schedule": [
                {"cycle": 0, "strategy": "bc", "overrides": bc_settings(task)},
                {"cycle": 1, "strategy": "ppo", "overrides": {**ppo_settings(task), **extra_ppo}},
            ],
        },
    }


def townlet_config(name: str, task: Mapping[str, Any]) -> dict[str, Any]:
    """The `townlet train` config of configuration `name` (not sb3)."""
    if name == "bc":
        return {"strategy": "bc", "bc": bc_settings(task)}
    if name == "ppo":
        return {"strategy": "ppo", "ppo": ppo_settings(task)}
    if name == "naive":
        return anneal_config(task, {"critic_warmup_rollouts": 0, "bc_weight": 0.0})
    return anneal_config(task, task["anneal_ppo"])


# ----------------------------------------------------------------------------- Townlet runs


@dataclass
class Run:
    """One configuration's run on one seed."""

    config: str
    seed: int
    curve: Curve
    status: str = "succeeded"
    bc_return: float | None = None  # BC alone, or the warm start of naive / anneal
    capture_steps: int = 0
    lowest_finetune: float | None = None  # the PPO stage's lowest evaluation
    notes: list[str] = field(default_factory=list)

    @property
    def final(self) -> float | None:
        return self.curve[-1][1] if self.curve else None


def _child_env() -> dict[str, str]:
    return {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}


def _townlet_command() -> list[str]:
    script = Path(sys.executable).with_name("townlet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "townlet_core.cli"]


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ppo_curve(stage: Path, per_update: int, offset: int) -> Curve:
    """(steps, greedy return) of a PPO run folder: its metrics lines' evaluations and, when
    not on a line, the final evaluation of result.json; `offset` steps added to each."""
    curve = [
        (offset + int(line["epoch"]) * per_update, float(line["eval_mean_return"]))
        for line in _metrics(stage / "metrics.jsonl")
        if "eval_mean_return" in line
    ]
    result_path = stage / "result.json"
    if result_path.is_file():
        result = _read_json(result_path)
        final, updates = result.get("eval_mean_return"), result.get("updates_run")
        if final is not None and updates is not None:
            steps = offset + int(updates) * per_update
            if not curve or curve[-1][0] != steps:
                curve.append((steps, float(final)))
    return curve


def _stage(run_dir: Path, strategy: str) -> Path | None:
    found = sorted((run_dir / "stages").glob(f"*-{strategy}"))
    return found[0] if found else None


def _bc_outcome(stage: Path) -> tuple[float | None, int]:
    """A BC run folder's greedy return and the transitions its capture recorded."""
    result = _read_json(stage / "result.json") if (stage / "result.json").is_file() else {}
    dataset_path = stage / "dataset.json"
    transitions = int(_read_json(dataset_path)["transitions"]) if dataset_path.is_file() else 0
    value = result.get("eval_mean_return")
    return (float(value) if value is not None else None), transitions


def parse_townlet(name: str, seed: int, run_dir: Path, per_update: int) -> Run:
    """What configuration `name`'s finished run folder says."""
    result = _read_json(run_dir / "result.json")
    status = result.get("status", "?")
    if name == "bc":
        bc_return, capture = _bc_outcome(run_dir)
        curve = [(capture, bc_return)] if bc_return is not None else []
        return Run(name, seed, curve, str(status), bc_return, capture)
    if name == "ppo":
        return Run(name, seed, ppo_curve(run_dir, per_update, 0), str(status))
    bc_stage, ppo_stage = _stage(run_dir, "bc"), _stage(run_dir, "ppo")
    bc_return, capture = _bc_outcome(bc_stage) if bc_stage else (None, 0)
    run = Run(name, seed, [], str(status), bc_return, capture)
    if result.get("anneal_status") not in (None, "PASS"):  # say why the run kept what it kept
        run.notes.append(f"{result['anneal_status']}: {', '.join(result.get('reasons', []))}")
    if bc_return is not None:
        run.curve.append((capture, bc_return))
    if ppo_stage is None:
        run.notes.append("no PPO stage (the BC gate stopped the schedule?)")
        return run
    finetune = ppo_curve(ppo_stage, per_update, capture)
    run.curve.extend(finetune)
    run.lowest_finetune = min((value for _, value in finetune), default=None)
    return run


def run_townlet(name: str, seed: int, task: Mapping[str, Any], out: Path) -> Run:
    """Run configuration `name` on `seed` as a `townlet train` subprocess; its Run."""
    run_dir = out / "runs" / f"{name}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    work = out / "work" / f"{name}-seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    config = {"runs_root": str(work / "runs"), **townlet_config(name, task)}
    config_path = work / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [*_townlet_command(), "train", "-c", str(config_path), "--run-dir", str(run_dir)]
    command += ["--json", "-q", "--seed", str(seed)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_child_env(), check=False, cwd=work
    )
    (work / "stdout.json").write_text(done.stdout)
    (work / "stderr.txt").write_text(done.stderr)
    if not (run_dir / "result.json").is_file():
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{name} seed {seed}: townlet train failed ({done.returncode}): {work}")
    ppo = ppo_settings(task)
    per_update = int(ppo.get("num_envs", 8)) * int(ppo.get("num_steps", 32))
    run = parse_townlet(name, seed, run_dir, per_update)
    if done.returncode != 0:
        run.notes.append(f"townlet train exit status {done.returncode}")
    return run


# ----------------------------------------------------------------------------- SB3


def sb3_arguments(ppo: Mapping[str, Any]) -> dict[str, Any]:
    """SB3 PPO's keyword arguments for a Townlet `ppo:` section (see the docstring)."""
    import torch

    from townlet_core.errors import ConfigError
    from townlet_strategies_ppo.config import PPOConfig

    config = PPOConfig(**ppo)
    if config.wrappers or config.max_episode_steps is not None:
        raise ConfigError("sb3: ppo.wrappers and ppo.max_episode_steps are not mapped; drop them")
    if config.advantage_normalization == "batch":
        raise ConfigError(
            "sb3: advantage_normalization batch has no SB3 counterpart; use minibatch"
        )
    if config.network.shared_trunk:
        raise ConfigError("sb3: network.shared_trunk is not mapped; use separate stacks")
    updates = max(1, config.total_timesteps // (config.num_envs * config.num_steps))

    def schedule(start: float, kind: str) -> float | Callable[[float], float]:
        if kind == "constant":
            return start
        return lambda progress: start * min(1.0, progress + 1.0 / updates)

    layers = list(config.network.hidden_sizes)
    activation = torch.nn.Tanh if config.network.activation == "tanh" else torch.nn.ReLU
    return {
        "n_steps": config.num_steps,
        "batch_size": config.minibatch_size,
        "n_epochs": config.update_epochs,
        "gamma": config.gamma,
        "gae_lambda": config.gae_lambda,
        "learning_rate": schedule(config.learning_rate, config.lr_schedule),
        "clip_range": schedule(config.clip_range, config.clip_schedule),
        "clip_range_vf": config.value_clip,
        "normalize_advantage": config.advantage_normalization == "minibatch",
        "ent_coef": config.ent_coef,
        "vf_coef": config.vf_coef / 2,
        "max_grad_norm": config.max_grad_norm if config.max_grad_norm is not None else 1e9,
        "target_kl": config.target_kl,
        "policy_kwargs": {
            "net_arch": {"pi": layers, "vf": layers},
            "activation_fn": activation,
        },
    }


def run_sb3(task: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """SB3 PPO from scratch, greedy evaluations every eval_every updates and at the end."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize

    from townlet_core.envs.evaluation import evaluate_policy
    from townlet_strategies_ppo.config import PPOConfig
    from townlet_strategies_ppo.trainer import EVAL_SEED_OFFSET  # never a training reset

    torch.set_num_threads(1)
    ppo = ppo_settings(task)
    config = PPOConfig(**ppo)
    per_update = config.num_envs * config.num_steps
    env: VecEnv = make_vec_env(
        config.env, n_envs=config.num_envs, seed=seed, env_kwargs=config.env_kwargs or None
    )
    if config.normalize_observations or config.normalize_rewards:
        env = VecNormalize(
            env,
            norm_obs=config.normalize_observations,
            norm_reward=config.normalize_rewards,
            gamma=config.gamma,
        )
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **sb3_arguments(ppo))
    curve: Curve = []

    def evaluate() -> None:
        def greedy(observation: Any) -> Any:
            if isinstance(env, VecNormalize):
                observation = env.normalize_obs(observation)
            return model.predict(observation, deterministic=True)[0]

        result = evaluate_policy(
            config.env, greedy, episodes=config.eval_episodes, seed=seed + EVAL_SEED_OFFSET
        )
        curve.append((int(model.num_timesteps), float(result.mean_return)))

    class Evaluation(BaseCallback):
        def _on_rollout_start(self) -> None:  # after the previous rollout's update
            updates = self.model.num_timesteps // per_update
            if updates and config.eval_every and updates % config.eval_every == 0:
                evaluate()

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=config.total_timesteps, callback=Evaluation())
    if not curve or curve[-1][0] != model.num_timesteps:
        evaluate()
    return {"curve": curve}


def spawn_sb3(task_path: Path, seed: int, out: Path) -> Run:
    """Run SB3 on `seed` in a fresh interpreter (this script, --worker sb3)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "sb3"]
    command += ["--task", str(task_path), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, env=_child_env(), check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"sb3 seed {seed}: worker failed with exit status {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    curve = [(int(steps), float(value)) for steps, value in result["curve"]]
    sb3_dir = out / "runs" / f"sb3-seed{seed}"
    sb3_dir.mkdir(parents=True, exist_ok=True)
    (sb3_dir / "curve.json").write_text(json.dumps(curve))
    return Run("sb3", seed, curve)


# ----------------------------------------------------------------------------- the report


def steps_to(curve: Curve, target: float) -> float:
    """The first evaluation's steps at or above `target`; infinity when none is."""
    return next((float(steps) for steps, value in curve if value >= target), math.inf)


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.1f}..{max(values):.1f}" if values else "-"


@dataclass
class Summary:
    """One configuration's figures over its seeds."""

    config: str
    finals: list[float]
    to_target: list[float]
    budget: int
    bc_returns: list[float]
    lowest: list[float]

    @property
    def median_to_target(self) -> float:
        return _median(self.to_target)

    def to_target_label(self) -> str:
        reached = sum(math.isfinite(steps) for steps in self.to_target)
        median = self.median_to_target
        shown = f"{median:,.0f}" if math.isfinite(median) else f">{self.budget:,}"
        return f"{shown} ({reached}/{len(self.to_target)} reached)"


def summarise(name: str, runs: list[Run], target: float) -> Summary:
    budget = max((run.curve[-1][0] for run in runs if run.curve), default=0)
    return Summary(
        config=name,
        finals=[run.final for run in runs if run.final is not None],
        to_target=[steps_to(run.curve, target) for run in runs],
        budget=budget,
        bc_returns=[run.bc_return for run in runs if run.bc_return is not None],
        lowest=[run.lowest_finetune for run in runs if run.lowest_finetune is not None],
    )


def print_table(summaries: list[Summary]) -> None:
    header = f"{'config':<8} {'final (median)':>14} {'final min..max':>18} "
    header += f"{'steps to target (median)':>32} {'BC return':>10} {'lowest in PPO':>14}"
    print(header)
    for summary in summaries:
        finetuned = summary.config in ("naive", "anneal")
        bc = f"{_median(summary.bc_returns):.1f}" if summary.bc_returns else "-"
        lowest = f"{_median(summary.lowest):.1f}" if finetuned and summary.lowest else "-"
        print(
            f"{summary.config:<8} {_median(summary.finals):>14.1f} {_range(summary.finals):>18} "
            f"{summary.to_target_label():>32} {bc:>10} {lowest:>14}"
        )


def check_targets(by_name: Mapping[str, Summary], runs: Mapping[str, list[Run]]) -> bool:
    """Print the issue's two targets, met or not, with their figures; both met?"""
    if "anneal" not in by_name or "ppo" not in by_name:
        print("targets not checked: they need both anneal and ppo in --configs")
        return False
    anneal, ppo = by_name["anneal"], by_name["ppo"]
    a_steps, p_steps = anneal.median_to_target, ppo.median_to_target
    if math.isfinite(p_steps):
        speed_met, bound = a_steps <= p_steps / 2, f"{p_steps / 2:,.0f}"
    else:  # PPO never got there: half its need is over budget / 2, so that is enough
        speed_met, bound = a_steps <= ppo.budget / 2, f">{ppo.budget / 2:,.0f}"
    print(
        f"  steps to target: anneal {anneal.to_target_label()} vs ppo {ppo.to_target_label()}; "
        f"target anneal <= half of ppo's ({bound}): {'met' if speed_met else 'NOT met'}"
    )
    if "naive" in runs:  # not a target: where the naive warm start dipped, for comparison
        print("  the naive warm start's lowest return in fine-tuning:")
        kept_in_band(runs["naive"])
    print("  anneal's lowest return in fine-tuning:")
    kept = kept_in_band(runs["anneal"])
    guard_met = bool(kept) and all(kept)
    bc_alone = by_name.get("bc")
    alone = f"; BC alone median {_median(bc_alone.finals):.1f}" if bc_alone else ""
    print(
        f"  lowest return in fine-tuning: anneal median {_median(anneal.lowest):.1f} vs its BC "
        f"median {_median(anneal.bc_returns):.1f}{alone}; target within "
        f"the return guardrail's band on every seed ({sum(kept)}/{len(kept)}): "
        f"{'met' if guard_met else 'NOT met'}"
    )
    return speed_met and guard_met


def kept_in_band(runs: Sequence[Run]) -> list[bool]:
    """Per seed (printed): did the PPO stage's lowest evaluation stay within the default
    return guardrail's band below the run's BC return?"""
    kept = []
    for run in runs:
        if run.bc_return is None or run.lowest_finetune is None:
            kept.append(False)
            continue
        floor = run.bc_return - _return_band(run.bc_return)
        kept.append(run.lowest_finetune >= floor)
        print(
            f"    seed {run.seed}: lowest {run.lowest_finetune:.1f} vs BC {run.bc_return:.1f} "
            f"(floor {floor:.1f}): {'kept' if kept[-1] else 'dropped below'}"
        )
    return kept


def _return_band(baseline: float) -> float:
    """How far below `baseline` anneal's default return guardrail lets a return fall."""
    from townlet_strategies_anneal.guardrails import DEFAULT_GUARDRAILS

    (guard,) = [g for g in DEFAULT_GUARDRAILS if g.metric == "eval_mean_return"]
    return guard.band(baseline)


def _median_band(curves: list[Curve]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Median, min and max across seeds at every step some seed evaluated (each curve held
    at its last value before the step, left out before its first)."""
    grid = sorted({steps for curve in curves for steps, _ in curve})
    medians, lows, highs = [], [], []
    for point in grid:
        values = [
            next(value for steps, value in reversed(curve) if steps <= point)
            for curve in curves
            if curve and curve[0][0] <= point
        ]
        medians.append(_median(values))
        lows.append(min(values))
        highs.append(max(values))
    return grid, medians, lows, highs


def plot(runs: Mapping[str, list[Run]], target: float, env_id: str, path: Path) -> bool:
    """return_vs_steps.png; False when matplotlib is not importable."""
    try:  # by name: matplotlib is optional (and has no stubs here)
        importlib.import_module("matplotlib").use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(8, 5))
    end = max(
        (run.curve[-1][0] for group in runs.values() for run in group if run.curve), default=1
    )
    lowest_median = target
    for name, group in runs.items():
        curves = [run.curve for run in group if run.curve]
        if not curves:
            continue
        grid, medians, lows, highs = _median_band(curves)
        if name == "bc":  # one point per seed: a flat line (every seed's) from the capture on
            grid, medians, lows, highs = (
                [grid[0], end],
                medians[-1:] * 2,
                lows[-1:] * 2,
                highs[-1:] * 2,
            )
        axes.plot(grid, medians, label=name)
        axes.fill_between(grid, lows, highs, alpha=0.2)
        lowest_median = min(lowest_median, *medians)
    # a scratch run's first evaluations can be far below everything else (-1,400 on
    # LunarLander): the medians stay in view, bands are cut below them
    axes.set_ylim(bottom=lowest_median - 0.25 * abs(target - lowest_median))
    axes.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("greedy mean return")
    axes.set_title(f"{env_id}: median and min-max over seeds")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


# ----------------------------------------------------------------------------- driver


def load_curves(paths: Sequence[Path]) -> tuple[dict[str, Any], list[Run]]:
    """The task and the runs of earlier curves.json files (--merge): runs made on separate
    cores or sessions, reported as one. Their tasks must agree (`anneal_ppo` only among the
    files with anneal runs: no other configuration reads it), and no configuration and seed
    may come twice."""
    shared: dict[str, Any] | None = None
    anneal_ppo: tuple[Path, Any] | None = None
    runs: dict[tuple[str, int], Run] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
            task, items = dict(data["task"]), list(data["runs"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TaskError(f"{path}: not a curves.json this script wrote ({error})") from error
        extra = task.pop("anneal_ppo", {})
        if shared is not None and task != shared:
            raise TaskError(f"{path}: its task differs from {paths[0]}'s; merge runs of one task")
        shared = task
        if any(item["config"] == "anneal" for item in items):
            if anneal_ppo is not None and extra != anneal_ppo[1]:
                raise TaskError(f"{path}: its anneal_ppo differs from {anneal_ppo[0]}'s")
            anneal_ppo = (path, extra)
        for item in items:
            key = (str(item["config"]), int(item["seed"]))
            if key in runs:
                raise TaskError(f"{path}: {key[0]} seed {key[1]} is in an earlier file too")
            try:  # as report() wrote it: asdict(Run)
                curve = [(int(steps), float(value)) for steps, value in item["curve"]]
                runs[key] = Run(**{**item, "curve": curve})
            except (KeyError, TypeError, ValueError) as error:
                raise TaskError(f"{path}: {key[0]} seed {key[1]} is not a run ({error})") from error
    assert shared is not None  # argparse gives --merge at least one path
    merged = {**shared, "anneal_ppo": anneal_ppo[1] if anneal_ppo else {}}
    return merged, [runs[key] for key in sorted(runs, key=lambda k: (k[1], CONFIGS.index(k[0])))]


def run_one(name: str, seed: int, task: Mapping[str, Any], task_path: Path, out: Path) -> Run:
    if name == "sb3":
        return spawn_sb3(task_path, seed, out)
    return run_townlet(name, seed, task, out)


def parse_configs(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown configuration(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {','.join(CONFIGS)}"
        )
    return names


def run_all(
    task: Mapping[str, Any],
    task_path: Path,
    names: list[str],
    seeds: list[int],
    jobs: int,
    out: Path,
) -> list[Run]:
    """Every configuration on every seed, `jobs` at once, each printed as it finishes."""
    print(
        f"{task['env']}: target {float(task['target']):g}, configurations {','.join(names)}, "
        f"seeds {','.join(map(str, seeds))}, {jobs} at once; runs in {out / 'runs'}"
    )
    pairs = [(name, seed) for seed in seeds for name in names]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_one, name, seed, task, task_path, out) for name, seed in pairs]
        results = []
        for future in futures:
            run = future.result()
            results.append(run)
            final = f"{run.final:.1f}" if run.final is not None else "-"
            notes = f" ({'; '.join(run.notes)})" if run.notes else ""
            print(
                f"  {run.config:<7} seed {run.seed}: {run.status}, final {final}{notes}", flush=True
            )
    return results


def report(task: Mapping[str, Any], results: list[Run], out: Path) -> bool:
    """The table, the targets, curves.json and the plot; both targets met?"""
    target = float(task["target"])
    names = [name for name in CONFIGS if any(run.config == name for run in results)]
    runs = {name: [run for run in results if run.config == name] for name in names}
    summaries = [summarise(name, runs[name], target) for name in names]
    print()
    print_table(summaries)
    print()
    met = check_targets({summary.config: summary for summary in summaries}, runs)
    curves = {
        "task": task,
        "runs": [asdict(run) for run in results],
    }
    (out / "curves.json").write_text(json.dumps(curves, indent=2))
    print(f"\nwrote {out / 'curves.json'}")
    if plot(runs, target, str(task["env"]), out / "return_vs_steps.png"):
        print(f"wrote {out / 'return_vs_steps.png'}")
    else:
        print("matplotlib is not importable: no return_vs_steps.png")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", type=Path, help="a benchmarks/tasks/*.yaml file")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument(
        "--seed-list",
        type=lambda text: [int(part) for part in text.split(",")],
        help="these seeds instead of 0..N-1, e.g. 1,2,3,4 (to add seeds to an earlier run)",
    )
    parser.add_argument("--configs", type=parse_configs, default=list(CONFIGS))
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="CURVES_JSON",
        help="run nothing: report the runs of these earlier curves.json files as one "
        "(same task; e.g. SB3's seeds run on another core)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/anneal-vs-peers"))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    parser.add_argument("--worker", choices=("sb3",), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if args.merge:
        try:
            task, results = load_curves(args.merge)
        except TaskError as error:
            parser.error(str(error))
        out.mkdir(parents=True, exist_ok=True)
        return 0 if report(task, results, out) else 1
    if args.task is None:
        parser.error("--task is required (or --merge earlier curves.json files)")
    try:
        task = load_task(args.task)
    except TaskError as error:
        parser.error(str(error))
    if args.worker:
        print(json.dumps(run_sb3(task, args.seed)))
        return 0
    if "sb3" in args.configs:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print(
                "sb3 needs stable-baselines3 (a benchmark-only peer); install it with\n"
                "    .venv/bin/pip install -c constraints/ci.txt stable-baselines3\n"
                "or leave sb3 out of --configs",
                file=sys.stderr,
            )
            return 2
    out.mkdir(parents=True, exist_ok=True)
    seeds: list[int] = args.seed_list or list(range(args.seeds))
    results = run_all(task, args.task.resolve(), args.configs, seeds, args.jobs, out)
    return 0 if report(task, results, out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
