"""PPO, top to bottom: set up, then per update collect experience, update, log, checkpoint.

The pieces live in their own modules: `losses.py` (the objective), `update.py` (epochs of
mini-batches), `rollout.py` (live experience), `replay.py` (dataset experience),
`telemetry.py` (the metrics line), `checkpointing.py` (where checkpoints go), `resume.py`
(the training state each checkpoint saves, and reading it back). This file only puts them
in order. Every random generator it uses is its own, so a resume continues exactly: each
periodic checkpoint saves them with the environments.

With `--resume` the trainer asks `resume.py` where to continue from and restores from it;
a resume always finishes the run, starting it over when there is no checkpoint yet and only
finishing it (final checkpoint, evaluation, result) when every update was already done.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_core import TrainingContext
from townlet_core.checkpoints import (
    INFO_FILE,
    STATE_FILE,
    ObservationSpec,
    checkpoint_dir,
    read_info,
)
from townlet_core.data.action_space import DISCRETE, ActionSpace
from townlet_core.dto import PPOTrainingResultDTO
from townlet_core.envs.active import active_rows
from townlet_core.envs.evaluation import EvaluationResult, evaluate_policy
from townlet_core.envs.make import make_vector_env
from townlet_core.envs.spaces import ActionMapping
from townlet_core.errors import ConfigError, DataError, TrainingDivergedError
from townlet_core.nn import (
    PolicyNetwork,
    TorchPolicy,
    build_network,
    device_name,
    load_checkpoint,
    select_device,
    torch_threads,
)
from townlet_core.nn.distributed import Ranks, rank_device
from townlet_core.nn.normalize import RewardScaler
from townlet_strategies_ppo import (
    bc_term,
    critic_warmup,
    env_spaces,
    ranks,
    resume,
    reward_scaling,
    telemetry,
)
from townlet_strategies_ppo.checkpointing import BEST_DIR, FINAL_DIR, Checkpoints
from townlet_strategies_ppo.checks import NO_REFERENCE
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.losses import NonFiniteError, compute_gae, explained_variance
from townlet_strategies_ppo.replay import ReplaySource
from townlet_strategies_ppo.resume import RESUMES_FILE, TrainingPosition
from townlet_strategies_ppo.rollout import CollectorState, Rollout, RolloutCollector, read_mask
from townlet_strategies_ppo.update import Batch, make_optimizer, ppo_update

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never replay training resets


def _seed_spaces(env: Any, seed: int) -> None:
    """Seed the env's space generators: PPO never samples them (so an env snapshot leaves
    them out), but an OS-seeded generator would make two runs with the same seed differ.
    (A PettingZoo world's `action_space` is a method per agent: its spaces are its own.)"""
    for holder in (env, *getattr(env, "envs", ())):
        for name in ("action_space", "observation_space", "single_action_space"):
            space = getattr(holder, name, None)
            if space is not None and not callable(space):
                space.seed(seed)


def train(context: TrainingContext, config: PPOConfig) -> PPOTrainingResultDTO:
    with torch_threads(config.torch_threads):
        trainer = PPOTrainer(context, config)
        try:
            return trainer.run()
        finally:  # also on an error or Ctrl-C: no env worker process outlives the run
            trainer.close()


class PPOTrainer:
    def __init__(self, context: TrainingContext, config: PPOConfig) -> None:
        self.context = context
        self.config = config
        self.world = world = context.world
        self._join_ranks()
        if config.max_log_entries is not None:
            context.metrics.rotate_after = config.max_log_entries
        self.replay: ReplaySource | None = None
        self.env: Any = None
        if config.dataset is not None:
            self.replay = ReplaySource(config.dataset, self.device)
            observation = self.replay.observation
            actions = ActionSpace(DISCRETE, (), n=self.replay.action_dim)
            self.mode, self.env_id = "replay", None
            self.total_updates = config.replay_updates
        else:
            self.env = self._build_env()
            mask_key = config.action_mask_key
            actions = env_spaces.action_space(self.env.single_action_space, config.env, mask_key)
            observation = env_spaces.observation_spec(
                self.env.single_observation_space, config.env, mask_key
            )
            self.mode, self.env_id = "rollout", config.env
            self.total_updates = max(
                1, config.total_timesteps // (config.num_envs * config.num_steps)
            )
        settings = config.env_settings() if self.env_id is not None else None
        self.checkpoints = Checkpoints(context, config.keep_checkpoints, self.env_id, settings)
        self.resumes = resume.Resumes(context, self.checkpoints)
        # rank 0 tidies and finds the checkpoint; every rank continues from that one
        point = self.resumes.point() if context.resume and world.is_writer else None
        self.resume_point = self.ranks.broadcast(point) if context.resume else None
        self.mapping = self._action_mapping()
        self.reward_scaler = (
            RewardScaler(self.local_envs, config.gamma)
            if config.normalize_rewards and self.env is not None
            else None
        )
        # what every checkpoint records beside the weights
        self.checkpoints.action_mapping = self.mapping
        self.checkpoints.reward_scaler = self.reward_scaler
        self.network = self._network(observation, actions)
        self.ranks.broadcast_module(self.network)  # every rank starts from rank 0's weights
        self.optimizer = make_optimizer(self.network, config.learning_rate)
        self._set_up_warmup()
        self.reference = self._reference(observation, actions)
        self.shuffle_rng = np.random.default_rng(
            [context.seed, 1] if world.rank == 0 else [context.seed, 1, world.rank]
        )
        self.sampler = torch.Generator(device=self.device).manual_seed(self.seed)
        # The global RNG too: torch seeds it at random in each process, and state.pt keeps
        # it (for a resume to restore), so unseeded, two runs with one seed would differ
        # there and in anything drawing from it (a wrapper, an op without a generator).
        torch.manual_seed(self.seed)
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
        if self.resume_point is not None:
            self._restore(self.resume_point)
        else:
            if context.resume:
                self.resumes.start_over()
            if self.env is not None:
                self._make_collector(self._reset(context.seed))

    # ------------------------------------------------------------------ set-up

    def _join_ranks(self) -> None:
        """This rank's device, place among the run's ranks (`ranks.py`; with one rank every
        collective is a no-op), share of the environments and seed of its own generators."""
        world = self.world
        self.device, described = select_device(rank_device(self.context.device, world))
        self.ranks = Ranks.join(world, self.device, self.context.run_dir)
        self.local_envs = self.config.num_envs // world.size
        self.seed = ranks.rank_seed(self.context.seed, world.rank)
        where = f"; {world.size} ranks ({self.ranks.backend})" if world.distributed else ""
        self.context.log(f"townlet: ppo training on {described}{where}")

    def close(self) -> None:
        """Close the environments (their worker processes, with `vector: async`); once."""
        if self.env is not None:
            self.env.close()
            self.env = None

    def _build_env(self) -> Any:
        env, _how = make_vector_env(
            self.config.env_settings(), self.local_envs, vector=self.config.vector
        )
        _seed_spaces(env, self.seed)
        if int(env.num_envs) != self.local_envs:  # a multi-agent env builds whole worlds
            env.close()
            raise ConfigError(
                f"ppo.num_envs: {self.config.env} steps {int(env.num_envs)} agents for "
                f"{self.local_envs} asked (a row per agent); use a multiple of its agents a world"
            )
        return env

    def _start(self) -> Path | None:
        """The checkpoint a fresh run (or a start over) warm-starts from, if any."""
        return self.config.init_checkpoint or self.context.warm_start

    def _action_mapping(self) -> ActionMapping:
        """How Box actions reach the env: as the checkpoint a resume continues from recorded
        it; else the config's when it sets one; else as the checkpoint the run starts from
        recorded it (a warm start keeps its policy's mapping)."""
        if self.resume_point is not None:
            return read_info(self.resume_point).action_mapping
        start = self._start()
        if "action_mapping" in self.config.model_fields_set or start is None:
            return self.config.action_mapping
        return read_info(start).action_mapping

    def _network(self, observation: ObservationSpec, actions: ActionSpace) -> PolicyNetwork:
        start = self._start()
        if start is not None and self.resume_point is None:  # a start over starts there too
            network, info = load_checkpoint(
                start, observation=observation, action_dim=actions.count, action_space=actions
            )
            self.context.log(f"townlet: ppo starts from {start} ({info.producer.strategy})")
            saved = info.extra.get(reward_scaling.EXTRA_KEY)
            if self.reward_scaler is not None and saved is not None:
                reward_scaling.restore(self.reward_scaler, saved, checkpoint_dir(start) / INFO_FILE)
                self.context.log(f"townlet: ppo scales rewards with {start}'s statistics")
            return network.to(self.device)
        return build_network(
            self.config.network_spec(),
            observation,
            actions.count,
            seed=self.context.seed,
            action_space=actions,
        ).to(self.device)

    def _set_up_warmup(self) -> None:
        """The first updates of a warm start fit only the critic (`critic_warmup.py`), with
        an optimiser of their own (the PPO one starts fresh after them)."""
        self.warmup_updates = critic_warmup.warmup_rollouts(
            self.config, self._start() is not None, self.total_updates
        )
        self.critic: critic_warmup.CriticOnly | None = None
        self.warmup_optimizer: torch.optim.Optimizer | None = None
        if self.warmup_updates:
            self.critic = critic_warmup.critic_only(self.network)
            self.warmup_optimizer = critic_warmup.make_warmup_optimizer(
                self.critic, critic_warmup.warmup_learning_rate(self.config)
            )

    def _reference(
        self, observation: ObservationSpec, actions: ActionSpace
    ) -> bc_term.Reference | None:
        """The frozen start policy the BC term pulls toward (None without the term): the
        network as loaded (before anything trained it), or, on a resume, loaded again."""
        if self.config.bc_weight == 0:
            return None
        start = self._start()
        if start is None:
            raise ConfigError(NO_REFERENCE)
        if self.resume_point is None:
            return bc_term.Reference(self.network)
        network, _info = load_checkpoint(
            start, observation=observation, action_dim=actions.count, action_space=actions
        )
        return bc_term.Reference(network.to(self.device))

    def _bc_term(self, update: int, batch: Batch) -> tuple[bc_term.BCTerm | None, float]:
        """The BC term of PPO update `update` (None when off or its weight is 0 now) and the
        weight it applies (0 in the critic warm-up, where the policy does not train)."""
        if self.reference is None or update < self.warmup_updates:
            return None, 0.0
        weight = bc_term.bc_weight(
            self.config, update - self.warmup_updates, self.total_updates - self.warmup_updates
        )
        if weight == 0.0:
            return None, 0.0
        params = self.reference.params(batch.features, batch.map)
        return bc_term.BCTerm(weight, self.reference.network.distribution, params), weight

    def _reset(self, seed: int) -> CollectorState:
        """Reset the environments with `seed`: the rollout's state at their first
        observations (and their masks)."""
        # env i of rank r is env r * local_envs + i of a one-process run, seeded alike
        observation_batch, info = self.env.reset(seed=seed + self.world.rank * self.local_envs)
        mask = read_mask(
            observation_batch,
            info,
            self.network.action_space,
            self.config.action_mask_key,
            "the environments' reset",
        )
        rows = int(self.env.num_envs)
        return resume.fresh_collector_state(observation_batch, rows, mask, active_rows(info, rows))

    def _make_collector(self, state: CollectorState) -> None:
        self.collector = RolloutCollector(
            self.env,
            self.network,
            self.config.num_steps,
            self.device,
            self.sampler,
            state,
            mapping=self.mapping,
            mask_key=self.config.action_mask_key,
            reward_scaler=self.reward_scaler,
        )

    # ------------------------------------------------------------------ resume (resume.py)

    def _training_state(self) -> dict[str, Any]:
        """What a checkpoint saves besides the weights; across ranks, rank 0's with each
        other rank's own generators and environments (every rank must call this)."""
        collector = self.collector.state if self.collector is not None else None
        state = self.resumes.training_state(
            self.position,
            self.optimizer,
            self.shuffle_rng,
            self.sampler,
            self.env,
            collector,
            self.reward_scaler,
            self.warmup_optimizer,
        )
        return resume.with_rank_states(state, self.ranks)

    def _restore(self, latest: Path) -> None:
        """Continue from checkpoint `latest`: weights, optimiser, generators, counters and
        the environments (each read and checked by `resume.py`)."""
        restored = self.resumes.restore(
            latest,
            self.network,
            self.optimizer,
            self.shuffle_rng,
            self.sampler,
            self.total_updates,
            self.reward_scaler,
            warmup=(self.warmup_optimizer, self.warmup_updates) if self.warmup_optimizer else None,
        )
        self.position = restored.position
        reason = self._restore_environments(restored) if self.env is not None else None
        self.resumed_from = self.position.next_update
        self.resumes.resumed(latest, self.position, reason)

    def _restore_environments(self, restored: resume.Restored) -> str | None:
        """Continue the saved environments exactly, or else restart the episodes of fresh
        ones; returns why the resume is not exact (None when it is)."""
        continued = resume.continue_environments(
            restored.environments, self.env, self.context.seed, self.position.next_update
        )
        if not isinstance(continued, resume.Restart):
            self._make_collector(continued)
            return None
        self.context.log(continued.warning(restored.state_path, self.env_id))
        self.env.close()
        self.env = self._build_env()
        if self.reward_scaler is not None:  # the returns in flight belonged to the old episodes
            self.reward_scaler.returns[:] = 0.0
        self._make_collector(self._reset(continued.seed))
        return continued.reason

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
            masks=None if rollout.masks is None else flat(rollout.masks),
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
        policy = TorchPolicy(self.network, device=self.device, greedy=True, mapping=self.mapping)
        return evaluate_policy(
            self.config.env_settings(),
            policy,
            episodes=episodes,
            seed=self.context.seed + EVAL_SEED_OFFSET,
            max_episode_steps=self.config.max_episode_steps,
            vector=self.config.vector,
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
            before = ranks.statistics_before(self.network)
            rollout = self.collector.collect(update + 1)
            ranks.merge_statistics(self.network, self.ranks, before, rollout.features)
        except NonFiniteError as exc:
            raise self._diverged(exc.what, exc.batch, update + 1) from exc
        position.env_steps += config.num_envs * config.num_steps
        live["episodes"] = len(rollout.episode_returns)
        if rollout.episode_returns:
            live["episode_return_mean"] = float(np.mean(rollout.episode_returns))
            live["episode_length_mean"] = float(np.mean(rollout.episode_lengths))
        if rollout.action_blocked_ratio is not None:
            live["action_blocked_ratio"] = rollout.action_blocked_ratio
        return self._live_batch(rollout), rollout.counters, live

    def _schedules(self, update: int) -> tuple[float, float]:
        """Learning rate (applied to the optimiser) and clip range for `update`: over the
        PPO updates, which start after the critic warm-up's (whose rate is constant)."""
        config = self.config
        if update < self.warmup_updates:
            return config.learning_rate, config.clip_range
        ppo_updates = self.total_updates - self.warmup_updates
        remaining = 1.0 - (update - self.warmup_updates) / ppo_updates
        lr = config.learning_rate * (remaining if config.lr_schedule == "linear" else 1.0)
        clip = config.clip_range * (remaining if config.clip_schedule == "linear" else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr, clip

    def run(self) -> PPOTrainingResultDTO:
        position = self.position
        line: dict[str, Any] = dict(position.last_line)
        with self.context.services.progress(
            self.total_updates, "ppo", unit="update", initial=position.next_update
        ) as bar:
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
        warming_up = update < self.warmup_updates
        bc, bc_weight = self._bc_term(update, batch)
        try:
            if warming_up:  # the critic warm-up: value loss only, the policy stays put
                assert self.warmup_optimizer is not None
                stats = ppo_update(
                    self.network,
                    self.warmup_optimizer,
                    batch,
                    config,
                    clip,
                    self.shuffle_rng,
                    value_only=self.critic,
                    ranks=self.ranks,
                )
            else:
                stats = ppo_update(
                    self.network,
                    self.optimizer,
                    batch,
                    config,
                    clip,
                    self.shuffle_rng,
                    bc=bc,
                    ranks=self.ranks,
                )
        except NonFiniteError as exc:
            raise self._diverged(f"losses ({exc.what})", 0, update + 1) from exc
        finished = time.perf_counter()
        rollout_ticks = config.num_steps if self.collector is not None else 0
        if stats.bc_kl is not None:
            live["bc_kl"] = stats.bc_kl
        live.update(
            explained_variance=explained_variance(batch.old_values, batch.returns),
            steps_per_second=(self.local_envs * rollout_ticks or batch.size)
            / max(finished - started, 1e-9),
            rollout_sec=collected - started,
            update_sec=finished - collected,
        )
        correlation = telemetry.correlation(
            batch.rewards.double().cpu().numpy(), batch.advantages.double().cpu().numpy()
        )
        # across ranks: every rank's figures combined (totals, means); one rank's as they are
        stats, live, counters, transitions, correlation = ranks.combine(
            self.ranks, stats, live, counters, batch.size, correlation
        )
        self._check_in_step(update + 1, live)
        position.steps += transitions
        position.log_stream_offset += 1
        position.next_update = update + 1
        if stats.adv_zero_std_batches:
            context.log(
                f"townlet: warning: advantage spread near zero in "
                f"{stats.adv_zero_std_batches} mini-batch(es) (update {update + 1})"
            )
        evaluation = None
        due = config.eval_every is not None and (update + 1) % config.eval_every == 0
        if self.collector is not None and due:
            evaluation = self._record_evaluation(update + 1)
            live["eval_mean_return"] = evaluation["mean_return"]
        line = telemetry.record(
            epoch=update + 1,
            stats=stats,
            transitions=transitions,
            lr=lr,
            steps=position.steps,
            epoch_duration_sec=finished - started,
            data_mode=self.mode,
            cycle_id=position.cycle_id,
            reward_advantage_corr=correlation,
            rollout_ticks=rollout_ticks,
            log_stream_offset=position.log_stream_offset,
            counters=counters,
            phase=critic_warmup.WARMUP_PHASE if warming_up else critic_warmup.PPO_PHASE,
            bc_weight=bc_weight,
            bc_weight_ratio=bc_term.weight_ratio(config, bc_weight),
            baseline=self.replay.baseline if self.replay is not None else {},
            conflict=self.replay.conflict if self.replay is not None else {},
            live=live,
        )
        if (update + 1) % config.log_frequency == 0:
            context.metrics.log(line)
            position.metrics_lines += 1
        # the latest training return (kept while an update ends no episode), the latest
        # greedy evaluation's, the loss
        bar.update(
            1,
            ret=live.get("episode_return_mean"),
            eval=live.get("eval_mean_return"),
            loss=stats.loss_total,
        )
        solved = (
            evaluation is not None
            and config.stop_return is not None
            and evaluation["mean_return"] >= config.stop_return
        )
        # saved with the checkpoint: a resume after the last update finishes from these
        position.last_line = resume.plain_line(line)
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

    def _check_in_step(self, update: int, live: dict[str, Any]) -> None:
        """Across ranks: every rank's weights digest after the update, recorded in the
        line (`weights_checksums`) and required to agree; ranks that drift apart stop the
        run rather than train on as different policies."""
        if not self.world.distributed:
            return
        digests = self.ranks.checksums(self.network)
        live["world_size"] = self.world.size
        live["weights_checksums"] = digests
        if len(set(digests)) > 1:
            raise TrainingDivergedError(
                f"PPO ranks hold different weights after update {update} (digests "
                f"{', '.join(digests)}); this is a bug in townlet-strategies-ppo, please "
                "report it with the run's config.json"
            )

    def _record_evaluation(self, update: int) -> dict[str, Any]:
        """Evaluate the greedy policy (rank 0 alone; every rank receives its summary)."""
        summary: dict[str, Any] | None = None
        if self.world.is_writer:
            result = self._evaluate(self.config.eval_episodes)
            assert result is not None
            summary = {"update": update, **result.as_dict()}
            summary.pop("returns", None)
        summary = self.ranks.broadcast(summary)
        assert summary is not None
        self.position.last_eval = summary
        mean_return = float(summary["mean_return"])
        if mean_return > self.position.best_eval:
            self.position.best_eval = mean_return
            self.checkpoints.save_best(self.network, {"eval_mean_return": mean_return})
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
        self.close()
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
        self.ranks.barrier()  # rank 0's files are complete before any rank returns
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
            critic_warmup_updates=self.warmup_updates,
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
