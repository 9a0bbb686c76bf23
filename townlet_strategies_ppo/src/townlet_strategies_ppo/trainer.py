"""PPO, top to bottom: set up, then per update collect experience, update, log, checkpoint.

The pieces live in their own modules: `losses.py` (the objective), `update.py` (epochs of
mini-batches), `rollout.py` (live experience), `replay.py` (dataset experience),
`telemetry.py` (the metrics line), `checkpointing.py` (where checkpoints go). This file
only puts them in order, and owns everything needed to resume exactly: every random
generator it uses is its own and saved with the environments in each periodic checkpoint.

Resuming trusts nothing it reads. The training state (`state.pt`) is read with
`torch.load(weights_only=True)` and holds only tensors and plain values: the environments
are saved as data (`townlet_core.envs.snapshot`), never as a pickle, and every value is
checked before it is used (errors name the file). An environment whose state is not plain
data (a Box2D world, MuJoCo data) cannot be continued exactly: its resume restarts the
episodes of fresh environments, reseeded from (seed, update), warns once, and records the
inexact resume in `resumes.json`. An older `state.pt` holding pickled environments is
treated the same way: the pickle is never read.

A resume always finishes the run: before the first checkpoint it starts the run over in
the same directory (same config and seed, so it equals an uninterrupted run); after the
last update (a stop during the final checkpoint or evaluation) it writes what remains from
the metrics and the early-stop flag saved with the last periodic checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_core import TrainingContext, atomic_write_json
from townlet_core.checkpoints import STATE_FILE, ObservationSpec
from townlet_core.dto import PPOTrainingResultDTO
from townlet_core.envs import snapshot
from townlet_core.envs.evaluation import EvaluationResult, evaluate_policy
from townlet_core.envs.make import make_vector_env, observation_layout
from townlet_core.envs.policies import action_count
from townlet_core.errors import DataError, TrainingDivergedError
from townlet_core.nn import (
    PolicyNetwork,
    TorchPolicy,
    build_network,
    device_name,
    load_checkpoint,
    load_training_state,
    select_device,
    torch_threads,
)
from townlet_strategies_ppo import telemetry
from townlet_strategies_ppo.checkpointing import BEST_DIR, FINAL_DIR, Checkpoints
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.losses import NonFiniteError, compute_gae, explained_variance
from townlet_strategies_ppo.replay import ReplaySource
from townlet_strategies_ppo.rollout import CollectorState, Rollout, RolloutCollector
from townlet_strategies_ppo.update import Batch, make_optimizer, ppo_update

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never replay training resets
#: The layout of the "environments" entry of a training state.
ENVIRONMENTS_FORMAT = "townlet-ppo-environments/1"
#: Every resume of a run (from which update, whether it continued exactly), in the run dir.
RESUMES_FILE = "resumes.json"


@dataclass
class TrainingPosition:
    """Counters that survive a resume (saved in every periodic checkpoint)."""

    next_update: int = 0
    steps: int = 0  # transitions trained on, cumulative across runs (telemetry `steps`)
    log_stream_offset: int = 0  # updates, cumulative across runs
    cycle_id: int = 0
    env_steps: int = 0  # environment steps of this run
    metrics_lines: int = 0  # telemetry lines written by this run
    best_eval: float = -math.inf
    last_eval: dict[str, Any] = field(default_factory=dict)
    #: The last update's telemetry line and whether the run stopped on stop_return: what
    #: finishing the run needs when a resume finds every update already done.
    last_line: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


def _seed_spaces(env: Any, seed: int) -> None:
    """Seed the env's space generators: PPO never samples them (so an env snapshot leaves
    them out), but an OS-seeded generator would make two runs with the same seed differ."""
    for holder in (env, *getattr(env, "envs", ())):
        for name in ("action_space", "observation_space", "single_action_space"):
            space = getattr(holder, name, None)
            if space is not None:
                space.seed(seed)


def train(context: TrainingContext, config: PPOConfig) -> PPOTrainingResultDTO:
    with torch_threads(config.torch_threads):
        return PPOTrainer(context, config).run()


class PPOTrainer:
    def __init__(self, context: TrainingContext, config: PPOConfig) -> None:
        self.context = context
        self.config = config
        self.device, described = select_device(context.device)
        context.log(f"townlet: ppo training on {described}")
        if config.max_log_entries is not None:
            context.metrics.rotate_after = config.max_log_entries
        self.replay: ReplaySource | None = None
        self.env: Any = None
        if config.dataset is not None:
            self.replay = ReplaySource(config.dataset, self.device)
            observation, action_dim = self.replay.observation, self.replay.action_dim
            self.mode, self.env_id = "replay", None
            self.total_updates = config.replay_updates
        else:
            self.env = self._build_env()
            layout = observation_layout(self.env.single_observation_space, config.env)
            map_shape = layout.get("map")
            observation = ObservationSpec(
                features_dim=layout["features"][0],
                map_shape=(map_shape[0], map_shape[1], map_shape[2]) if map_shape else None,
            )
            action_dim = action_count(self.env.single_action_space, config.env)
            self.mode, self.env_id = "rollout", config.env
            self.total_updates = max(
                1, config.total_timesteps // (config.num_envs * config.num_steps)
            )
        self.checkpoints = Checkpoints(context, config.keep_checkpoints, self.env_id)
        self.resume_point = self._resume_point() if context.resume else None
        self.network = self._network(observation, action_dim)
        self.optimizer = make_optimizer(self.network, config.learning_rate)
        self.shuffle_rng = np.random.default_rng([context.seed, 1])
        self.sampler = torch.Generator(device=self.device).manual_seed(context.seed)
        carried = context.state
        cycle = int(carried.get("cycle_id", -1))
        self.position = TrainingPosition(
            steps=int(carried.get("steps", 0)),
            log_stream_offset=int(carried.get("log_stream_offset", 0)),
            # the original's rule: a rollout run starts a new cycle, a replay run reuses it
            cycle_id=cycle + 1 if self.mode == "rollout" else max(cycle, 0),
        )
        self.collector: RolloutCollector | None = None
        self.resumed_from: int | None = None
        self._warned_snapshot = False
        if self.resume_point is not None:
            self._restore(self.resume_point)
        else:
            if context.resume:
                self._start_over()
            if self.env is not None:
                observation_batch, _info = self.env.reset(seed=context.seed)
                self._make_collector(_fresh_collector_state(observation_batch, config.num_envs))

    # ------------------------------------------------------------------ set-up

    def _build_env(self) -> Any:
        env, _how = make_vector_env(
            self.config.env, self.config.num_envs, self.config.max_episode_steps
        )
        _seed_spaces(env, self.context.seed)
        return env

    def _network(self, observation: ObservationSpec, action_dim: int) -> PolicyNetwork:
        start = self.config.init_checkpoint or self.context.warm_start
        if start is not None and self.resume_point is None:  # a start over starts there too
            network, info = load_checkpoint(start, observation=observation, action_dim=action_dim)
            self.context.log(f"townlet: ppo starts from {start} ({info.producer.strategy})")
            return network.to(self.device)
        return build_network(
            self.config.network, observation, action_dim, seed=self.context.seed
        ).to(self.device)

    def _make_collector(self, state: CollectorState) -> None:
        self.collector = RolloutCollector(
            self.env, self.network, self.config.num_steps, self.device, self.sampler, state
        )

    # ------------------------------------------------------------------ resume

    def _training_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "position": {
                k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in vars(self.position).items()
            },
            "optimizer": self.optimizer.state_dict(),
            "shuffle_rng": self.shuffle_rng.bit_generator.state,
            "sampler": self.sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_global_state(),
            "python_rng": random.getstate(),
        }
        if self.env is not None and self.collector is not None:
            state["environments"] = self._environments_state(self.collector.state)
        return state

    def _environments_state(self, collector: CollectorState) -> dict[str, Any]:
        """The environments and the rollout they are in, as data (tensors and plain values
        that `torch.load(weights_only=True)` reads); an env that is not plain data is saved
        as a reason instead, and its resume restarts episodes."""
        saved: dict[str, Any] = {"format": ENVIRONMENTS_FORMAT, "snapshot": None, "reason": None}
        try:
            saved["snapshot"] = snapshot.map_bytes(snapshot.capture(self.env), _bytes_tensor)
            saved["collector"] = snapshot.map_bytes(
                snapshot.encode_data(_collector_data(collector), "the rollout's state"),
                _bytes_tensor,
            )
        except snapshot.NotSnapshotable as exc:
            saved["snapshot"], saved["reason"] = None, str(exc)
            if not self._warned_snapshot:
                self._warned_snapshot = True
                self.context.log(
                    f"townlet: warning: {exc}; a resume of this run restarts the episodes of "
                    "fresh environments instead of continuing them exactly"
                )
        return saved

    def _resume_point(self) -> Path | None:
        """The checkpoint to resume from (None: there is none yet), after removing what
        earlier stops left behind."""
        removed = self.checkpoints.clean()
        if removed:
            self.context.log(
                f"townlet: removed what an earlier stop left behind: {', '.join(removed)}"
            )
        return self.checkpoints.latest()

    def _start_over(self) -> None:
        """A resume before the first checkpoint: nothing to continue, so the run starts over
        in its directory with its recorded config and seed (equal to an uninterrupted run)."""
        self.context.log(
            f"townlet: {self.context.run_dir}: no checkpoint yet; starting the run over"
        )
        self.checkpoints.clean_all()
        self.context.metrics.truncate(0)
        self._record_resume(0, exact=True, reason="no checkpoint yet; started the run over")

    def _restore(self, latest: Path) -> None:
        network, _info = load_checkpoint(
            latest, observation=self.network.observation, action_dim=self.network.action_dim
        )
        self.network.load_state_dict(network.state_dict())
        state = load_training_state(latest)
        state_path = latest / STATE_FILE
        try:
            self._restore_optimizer(state["optimizer"])
            self.position = _read_position(
                state.get("position", state.get("progress")),  # "progress" before 0.1
                state_path,
                self.total_updates,
            )
            self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
            self.sampler.set_state(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            _set_numpy_global_state(state["numpy_rng"])
            random.setstate(_as_tuple(state["python_rng"]))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise DataError(
                f"{state_path}: training state does not fit this run "
                f"({type(exc).__name__}: {exc}); the checkpoint is damaged or from another "
                "run, start a new run"
            ) from exc
        exact, reason = True, None
        if self.env is not None:
            exact, reason = self._restore_environments(state.get("environments"), state_path)
        self.context.metrics.truncate(self.position.metrics_lines)
        self.resumed_from = self.position.next_update
        self.context.log(
            f"townlet: resuming {self.context.run_dir} after update {self.position.next_update} "
            f"from {latest.name}"
        )
        self._record_resume(self.position.next_update, exact=exact, reason=reason)

    def _restore_optimizer(self, saved: Any) -> None:
        """Load the optimiser's state, and check every moment tensor has its parameter's
        shape (a mismatch would otherwise surface as a crash in the middle of an update)."""
        self.optimizer.load_state_dict(saved)
        for parameter, moments in self.optimizer.state.items():
            for name, value in moments.items():
                moment = isinstance(value, torch.Tensor) and value.dim() > 0
                if moment and value.shape != parameter.shape:
                    raise ValueError(
                        f"optimizer {name} has shape {tuple(value.shape)}, its parameter "
                        f"{tuple(parameter.shape)}"
                    )

    def _restore_environments(self, saved: Any, state_path: Path) -> tuple[bool, str | None]:
        """Continue the saved environments exactly when the state is readable data that
        fits; otherwise restart the episodes of fresh environments. Nothing is unpickled."""
        reason: str
        if isinstance(saved, torch.Tensor):
            reason = (
                "holds environments pickled by an older townlet-strategies-ppo; a resume never "
                "unpickles them (a pickle can run any code)"
            )
        elif not isinstance(saved, dict) or saved.get("format") != ENVIRONMENTS_FORMAT:
            reason = "holds no environment state this version reads"
        elif saved.get("snapshot") is None:
            reason = f"holds no environment state: {str(saved.get('reason'))[:300]}"
        else:
            try:
                self._continue_environments(saved)
                return True, None
            except snapshot.SnapshotError as exc:
                reason = f"holds an environment state that does not fit ({exc})"
        update = self.position.next_update
        seed = _restart_seed(self.context.seed, update)
        self.context.log(
            f"townlet: warning: {state_path} {reason}. Resuming with fresh {self.env_id} "
            f"environments (episodes restart, seeded {seed} from seed {self.context.seed} and "
            f"update {update}): this resume is not an exact continuation (recorded in "
            f"{RESUMES_FILE})"
        )
        self.env.close()
        self.env = self._build_env()
        observation_batch, _info = self.env.reset(seed=seed)
        self._make_collector(_fresh_collector_state(observation_batch, self.config.num_envs))
        return False, reason

    def _continue_environments(self, saved: dict[str, Any]) -> None:
        env_tree = snapshot.map_bytes(saved["snapshot"], _tensor_bytes, leaf=torch.Tensor)
        collector_tree = snapshot.map_bytes(
            saved.get("collector"), _tensor_bytes, leaf=torch.Tensor
        )
        template, _info = self.env.reset(seed=self.context.seed)
        collector = _collector_from(snapshot.decode_data(collector_tree), template)
        snapshot.restore(self.env, env_tree)
        self._make_collector(collector)

    def _record_resume(self, update: int, *, exact: bool, reason: str | None) -> None:
        """Append this resume to `resumes.json` (the result lists the file as an artifact)."""
        path = self.context.run_dir / RESUMES_FILE
        entries: list[Any] = []
        if path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                entries = loaded if isinstance(loaded, list) else []
            except (OSError, UnicodeDecodeError, ValueError):
                self.context.log(f"townlet: warning: {path}: unreadable; starting it again")
        entries.append(
            {
                "resumed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "from_update": update,
                "exact": exact,
                "reason": reason,
            }
        )
        atomic_write_json(path, entries)

    # ------------------------------------------------------------------ one update

    def _live_batch(self, rollout: Rollout) -> Batch:
        advantages, returns = compute_gae(
            rollout.rewards,
            rollout.values,
            rollout.terminated,
            rollout.truncated,
            rollout.last_values,
            self.config.gamma,
            self.config.gae_lambda,
        )
        valid = rollout.valid.reshape(-1).bool()

        def flat(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(-1, *tensor.shape[2:])[valid]

        return Batch(
            features=flat(rollout.features),
            map=None if rollout.map is None else flat(rollout.map),
            actions=flat(rollout.actions),
            old_log_probs=flat(rollout.log_probs),
            old_values=flat(rollout.values),
            advantages=flat(advantages),
            returns=flat(returns),
            rewards=flat(rollout.rewards),
        )

    def _diverged(self, what: str, batch: int, epoch: int) -> TrainingDivergedError:
        label = self.replay.label if self.replay is not None else self.env_id
        latest = self.checkpoints.latest()
        keep = f"; the last good checkpoint is {latest}" if latest else ""
        return TrainingDivergedError(
            f"PPO {what} contained NaN/inf (dataset={label}, batch={batch}, epoch={epoch}); "
            f"stopped before applying it{keep}. Lower ppo.learning_rate or check the data"
        )

    def _evaluate(self, episodes: int) -> EvaluationResult | None:
        if self.env_id is None:
            return None
        policy = TorchPolicy(self.network, device=self.device, greedy=True)
        return evaluate_policy(
            self.env_id,
            policy,
            episodes=episodes,
            seed=self.context.seed + EVAL_SEED_OFFSET,
            max_episode_steps=self.config.max_episode_steps,
        )

    # ------------------------------------------------------------------ the loop

    def _collect(self, update: int) -> tuple[Batch, dict[str, float], dict[str, Any]]:
        """One batch of experience (live rollout or replay pass), its counters and the live
        telemetry (episodes finished)."""
        config, position = self.config, self.position
        live: dict[str, Any] = {}
        try:
            if self.collector is None:
                assert self.replay is not None
                batch = self.replay.batch(
                    self.network, config.recompute_old, config.gamma, config.gae_lambda
                )
                return batch, self.replay.counters, live
            rollout = self.collector.collect()
        except NonFiniteError as exc:
            raise self._diverged(exc.what, exc.batch, update + 1) from exc
        position.env_steps += config.num_envs * config.num_steps
        live["episodes"] = len(rollout.episode_returns)
        if rollout.episode_returns:
            live["episode_return_mean"] = float(np.mean(rollout.episode_returns))
            live["episode_length_mean"] = float(np.mean(rollout.episode_lengths))
        return self._live_batch(rollout), rollout.counters, live

    def _schedules(self, update: int) -> tuple[float, float]:
        """Learning rate (applied to the optimiser) and clip range for `update`."""
        config = self.config
        remaining = 1.0 - update / self.total_updates
        lr = config.learning_rate * (remaining if config.lr_schedule == "linear" else 1.0)
        clip = config.clip_range * (remaining if config.clip_schedule == "linear" else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr, clip

    def run(self) -> PPOTrainingResultDTO:
        position = self.position
        line: dict[str, Any] = dict(position.last_line)
        with self.context.services.progress(self.total_updates, "ppo") as bar:
            bar.update(position.next_update)
            # a run that stopped on stop_return is done, even if its updates are not
            for update in range(position.next_update, self.total_updates):
                if position.stopped_early:
                    break
                line = self._update(update, bar)
        return self._finish(line, position.stopped_early)

    def _update(self, update: int, bar: Any) -> dict[str, Any]:
        """One update: collect, train, log, evaluate and checkpoint when due."""
        config, context, position = self.config, self.context, self.position
        lr, clip = self._schedules(update)
        started = time.perf_counter()
        batch, counters, live = self._collect(update)
        collected = time.perf_counter()
        if not bool(torch.isfinite(batch.advantages).all()):
            raise self._diverged("advantages", 0, update + 1)
        try:
            stats = ppo_update(self.network, self.optimizer, batch, config, clip, self.shuffle_rng)
        except NonFiniteError as exc:
            raise self._diverged(f"losses ({exc.what})", 0, update + 1) from exc
        finished = time.perf_counter()
        position.steps += batch.size
        position.log_stream_offset += 1
        position.next_update = update + 1
        if stats.adv_zero_std_batches:
            context.log(
                f"townlet: warning: advantage spread near zero in "
                f"{stats.adv_zero_std_batches} mini-batch(es) (update {update + 1})"
            )
        rollout_ticks = config.num_steps if self.collector is not None else 0
        live.update(
            explained_variance=explained_variance(batch.old_values, batch.returns),
            steps_per_second=(config.num_envs * rollout_ticks or batch.size)
            / max(finished - started, 1e-9),
            rollout_sec=collected - started,
            update_sec=finished - collected,
        )
        evaluation = None
        due = config.eval_every is not None and (update + 1) % config.eval_every == 0
        if self.collector is not None and due:
            evaluation = self._record_evaluation(update + 1)
            live["eval_mean_return"] = evaluation["mean_return"]
        line = telemetry.record(
            epoch=update + 1,
            stats=stats,
            transitions=batch.size,
            lr=lr,
            steps=position.steps,
            epoch_duration_sec=finished - started,
            data_mode=self.mode,
            cycle_id=position.cycle_id,
            reward_advantage_corr=telemetry.correlation(
                batch.rewards.double().cpu().numpy(),
                batch.advantages.double().cpu().numpy(),
            ),
            rollout_ticks=rollout_ticks,
            log_stream_offset=position.log_stream_offset,
            counters=counters,
            baseline=self.replay.baseline if self.replay is not None else {},
            conflict=self.replay.conflict if self.replay is not None else {},
            live=live,
        )
        if (update + 1) % config.log_frequency == 0:
            context.metrics.log(line)
            position.metrics_lines += 1
        bar.update(1, ret=live.get("episode_return_mean"), loss=stats.loss_total)
        solved = (
            evaluation is not None
            and config.stop_return is not None
            and evaluation["mean_return"] >= config.stop_return
        )
        # saved with the checkpoint: a resume after the last update finishes from these
        position.last_line = _plain_line(line)
        position.stopped_early = solved
        last = update + 1 == self.total_updates
        if (update + 1) % config.checkpoint_every == 0 or last or solved:
            self.checkpoints.save_periodic(
                update + 1, self.network, _metrics(line), self._training_state()
            )
        if solved:
            context.log(
                f"townlet: mean return {live['eval_mean_return']:.1f} reached "
                f"stop_return {config.stop_return} after update {update + 1}"
            )
        return line

    def _record_evaluation(self, update: int) -> dict[str, Any]:
        result = self._evaluate(self.config.eval_episodes)
        assert result is not None
        summary = {"update": update, **result.as_dict()}
        summary.pop("returns", None)
        self.position.last_eval = summary
        if result.mean_return > self.position.best_eval:
            self.position.best_eval = result.mean_return
            self.checkpoints.save_best(self.network, {"eval_mean_return": result.mean_return})
        return summary

    def _finish(self, line: dict[str, Any], stopped_early: bool) -> PPOTrainingResultDTO:
        config, context, position = self.config, self.context, self.position
        if not line:  # resumed after the last update from a checkpoint without its metrics
            where = self.resume_point / STATE_FILE if self.resume_point else context.run_dir
            raise DataError(
                f"{where}: every update is done, but the checkpoint (from an older "
                "townlet-strategies-ppo) holds no metrics of the last one to finish the run "
                "with; start a new run"
            )
        if self.resume_point is not None and position.next_update == self.resumed_from:
            context.log(
                "townlet: every update was done before the stop; finishing the run "
                "(final checkpoint, evaluation, result)"
            )
        self.checkpoints.save_final(self.network, _metrics(line), self._training_state())
        evaluation: dict[str, Any] | None = None
        if self.env_id is not None:
            if position.last_eval.get("update") == position.next_update:
                evaluation = position.last_eval
            else:
                evaluation = self._record_evaluation(position.next_update)
        if self.env is not None:
            self.env.close()
        context.state.update(
            steps=position.steps,
            log_stream_offset=position.log_stream_offset,
            cycle_id=position.cycle_id,
        )
        status_reason = None
        accept = config.accept_return
        if accept is not None and evaluation is not None and evaluation["mean_return"] < accept:
            status_reason = (
                f"evaluation mean return {evaluation['mean_return']:.2f} is below "
                f"accept_return {accept}"
            )
        telemetry_fields = {
            k: v
            for k, v in line.items()
            if (k in PPOTrainingResultDTO.model_fields or k.startswith("conflict."))
            and not k.startswith("eval_")
        }
        # a run finished by a resume after its last update has no timing of that update
        telemetry_fields.setdefault("epoch_duration_sec", 0.0)
        has_best = (context.run_dir / BEST_DIR).exists()
        resumes = {"resumes": RESUMES_FILE} if (context.run_dir / RESUMES_FILE).exists() else {}
        return PPOTrainingResultDTO(
            **context.run_fields(device=device_name(self.device)),
            status="failed" if status_reason else "succeeded",
            status_reason=status_reason,
            artifacts={"checkpoint": FINAL_DIR}
            | ({"best_checkpoint": BEST_DIR} if has_best else {})
            | resumes,
            **telemetry_fields,
            env_id=self.env_id,
            dataset=str(config.dataset) if config.dataset is not None else None,
            updates_run=position.next_update - (self.resumed_from or 0),
            total_updates=self.total_updates,
            env_steps=position.env_steps,
            stopped_early=stopped_early,
            resumed_from_update=self.resumed_from,
            checkpoint=FINAL_DIR,
            best_checkpoint=BEST_DIR if has_best else None,
            best_eval_mean_return=position.best_eval if math.isfinite(position.best_eval) else None,
            eval_episodes=evaluation["episodes"] if evaluation else None,
            eval_mean_return=evaluation["mean_return"] if evaluation else None,
            eval_std_return=evaluation["std_return"] if evaluation else None,
            eval_min_return=evaluation["min_return"] if evaluation else None,
            eval_max_return=evaluation["max_return"] if evaluation else None,
            eval_mean_length=evaluation["mean_length"] if evaluation else None,
        )


def _metrics(line: dict[str, Any]) -> dict[str, float | None]:
    keep = (
        "loss_total",
        "loss_policy",
        "loss_value",
        "clip_fraction",
        "episode_return_mean",
        "eval_mean_return",
    )
    return {k: float(line[k]) for k in keep if isinstance(line.get(k), (int, float))}


def _numpy_global_state() -> dict[str, Any]:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(position),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _set_numpy_global_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _plain_line(line: dict[str, Any]) -> dict[str, Any]:
    """A telemetry line as plain Python values (NumPy scalars would need unpickling),
    without its timings (two runs with one seed write the same checkpoint files)."""
    plain: dict[str, Any] = {}
    for key, value in line.items():
        if key in telemetry.TIMING_FIELDS:
            continue
        if isinstance(value, (bool, np.bool_)):
            plain[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            plain[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            plain[key] = float(value)
        elif value is None or isinstance(value, str):
            plain[key] = value
    return plain


# ---------------------------------------------------------------------- reading a state


def _read_position(saved: Any, state_path: Path, total_updates: int) -> TrainingPosition:
    """The saved counters, each checked for its type and range (DataError naming the file)."""
    if not isinstance(saved, dict) or "next_update" not in saved:
        raise DataError(f"{state_path}: training state has no position; start a new run")
    values: dict[str, Any] = {}
    for item in fields(TrainingPosition):
        if item.name not in saved:  # added in a later version: keep the default
            continue
        value = saved[item.name]
        if item.name == "best_eval":
            ok = value is None or (type(value) in (int, float) and not math.isnan(value))
            value = -math.inf if value is None else float(value)
        elif item.name in ("last_eval", "last_line"):
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        elif item.name == "stopped_early":
            ok = type(value) is bool
        else:
            ok = type(value) is int and value >= 0
        if not ok:
            raise DataError(
                f"{state_path}: training position {item.name}={str(value)[:80]!r} is not "
                "valid; the checkpoint is damaged, start a new run"
            )
        values[item.name] = value
    position = TrainingPosition(**values)
    if position.next_update > total_updates:
        raise DataError(
            f"{state_path}: training position is after update {position.next_update}, but "
            f"the run has {total_updates}; the checkpoint is from another run"
        )
    return position


# ---------------------------------------------------------------------- environments


def _fresh_collector_state(observation: Any, num_envs: int) -> CollectorState:
    return CollectorState(
        observation=observation,
        previous_done=np.zeros(num_envs, dtype=bool),
        episode_return=np.zeros(num_envs),
        episode_length=np.zeros(num_envs, dtype=np.int64),
    )


def _collector_data(state: CollectorState) -> dict[str, Any]:
    return {
        "observation": state.observation,
        "previous_done": state.previous_done,
        "episode_return": state.episode_return,
        "episode_length": state.episode_length,
        "counters": dict(state.counters),
    }


def _collector_from(data: Any, template: Any) -> CollectorState:
    """The rollout's saved state, checked against a fresh reset's `template` observation."""
    if not isinstance(data, dict):
        raise snapshot.SnapshotError("the rollout's state is missing")
    fresh = _fresh_collector_state(template, len(_first_array(template)))
    observation = data.get("observation")
    _check_like(observation, template, "observation")
    for name in ("previous_done", "episode_return", "episode_length"):
        _check_like(data.get(name), getattr(fresh, name), name)
    counters = data.get("counters")
    if not isinstance(counters, dict) or not all(
        isinstance(k, str) and type(v) in (int, float) for k, v in counters.items()
    ):
        raise snapshot.SnapshotError("the rollout's counters are not numbers by name")
    return CollectorState(
        observation=observation,
        previous_done=data["previous_done"],
        episode_return=data["episode_return"],
        episode_length=data["episode_length"],
        counters={k: float(v) for k, v in counters.items()},
    )


def _first_array(observation: Any) -> np.ndarray:
    if isinstance(observation, dict):
        return np.asarray(next(iter(observation.values())))
    return np.asarray(observation)


def _check_like(value: Any, template: Any, what: str) -> None:
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            raise snapshot.SnapshotError(f"the rollout's {what} has other parts than the env's")
        for key in template:
            _check_like(value[key], template[key], f"{what}[{key!r}]")
        return
    template = np.asarray(template)
    if (
        not isinstance(value, np.ndarray)
        or value.shape != template.shape
        or value.dtype != template.dtype
    ):
        shape = getattr(value, "shape", None)
        raise snapshot.SnapshotError(
            f"the rollout's {what} is {shape}, the env's {template.shape} {template.dtype}"
        )


def _restart_seed(seed: int, update: int) -> int:
    """The reset seed of fresh environments after update `update` (an inexact resume)."""
    sequence = np.random.SeedSequence([seed % 2**63, update])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def _bytes_tensor(data: bytes) -> torch.Tensor:
    if not data:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    if tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise snapshot.SnapshotError(
            f"environment data must be bytes (1-D uint8), found {tensor.dtype} "
            f"{tuple(tensor.shape)}"
        )
    return bytes(tensor.numpy().tobytes())
