"""Behaviour cloning, top to bottom: demonstrations, network, epochs, checkpoint, evaluation.

The negative log-likelihood of the recorded actions under the policy (cross-entropy for
Discrete actions, a Gaussian's for Box, summed per dimension for MultiDiscrete and
MultiBinary: `objective.py`), Adam with weight decay, shuffled mini-batches drawn from
(seed, epoch), an optional learning-rate schedule, early stopping on the held-out loss. Every
number reported is measured: the training loss is the epoch mean over samples (the original
reported its last mini-batch) and the metric (accuracy, or action_mse for Box actions) is on
held-out trajectories as well as training.

Two ways to hold the data, one training step. In memory (the default) each split is moved to
the training device once as a `Split` and every epoch permutes it whole. With `bc.streaming`
each split is a `StreamedSplit`: the trajectories stay on disk and every pass reads them one
at a time (`splits.py` says what each pass costs and how it shuffles).

With observation normalisation (`bc.normalize_observations`) a fresh network's statistics
are set from the training split's features once, before the first epoch, and stay fixed
while training: they are part of the weights, so the checkpoint carries them to PPO warm
starts, evaluate and capture.

The data was checked in `prepare` (`checks.py`) before the run directory existed; the run
records what it trained on, and which rule found each listed file, in `dataset.json`. A
diverging loss stops the run (`divergence.py` says when) with TrainingDivergedError.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_core import TrainingContext
from townlet_core.atomic import atomic_write_json
from townlet_core.checkpoints import ObservationSpec
from townlet_core.data import ReplayDataset
from townlet_core.data.action_space import BOX, ActionSpace
from townlet_core.data.validation import DatasetSummary
from townlet_core.dto import BCTrainingResultDTO
from townlet_core.envs.capture import capture
from townlet_core.envs.evaluation import EvaluationResult, evaluate_policy
from townlet_core.envs.settings import checkpoint_record
from townlet_core.errors import TrainingDivergedError
from townlet_core.nn import (
    PolicyNetwork,
    TorchPolicy,
    build_network,
    device_name,
    load_checkpoint,
    save_checkpoint,
    select_device,
    torch_threads,
)
from townlet_core.nn.distributed import Ranks, rank_device
from townlet_strategies_bc import ranks as sharing
from townlet_strategies_bc.checks import capture_policy
from townlet_strategies_bc.config import BCConfig
from townlet_strategies_bc.divergence import LossTrace, check_divergence
from townlet_strategies_bc.objective import Objective, objective_for
from townlet_strategies_bc.splits import (
    SCORE_BATCH,
    STREAM_SHUFFLE_BUFFER,
    Split,
    StreamedSplit,
    sample_of,
    split_in_memory,
)

__all__ = ["SCORE_BATCH", "STREAM_SHUFFLE_BUFFER", "Split", "StreamedSplit", "train"]

CHECKPOINT_DIR = "checkpoint"
DEMONSTRATIONS_DIR = "demonstrations"
#: What the run trained on: the dataset summary, with the rule that found each file.
DATASET_RECORD = "dataset.json"
EVAL_SEED_OFFSET = 1_000_003
#: Up to this size a split is permuted whole each epoch rather than gathered per batch.
PERMUTE_WHOLE_BYTES = 64 * 2**20
#: Training transitions scored after each epoch for the per-epoch training accuracy.
TRAIN_ACCURACY_SAMPLE = 4096  # evaluation episodes never replay the captured ones


def _demonstrations(
    context: TrainingContext, config: BCConfig, ranks: Ranks
) -> tuple[Path, str | None]:
    """The dataset to train on, recording it first when a capture was asked for (rank 0
    records; every rank then reads what it wrote)."""
    if config.dataset is not None:
        return config.dataset, config.eval_env
    assert config.capture is not None
    spec = config.capture
    out = context.run_dir / DEMONSTRATIONS_DIR
    if context.world.is_writer:
        _capture(context, spec, out)
    ranks.barrier()  # the demonstrations are on disk before any rank reads them
    return out, config.eval_env or spec.env


def _capture(context: TrainingContext, spec: Any, out: Path) -> None:
    with context.services.progress(
        spec.episodes, f"capture {spec.env}", unit="episode"
    ) as progress:
        summary = capture(
            spec.env_settings(),
            capture_policy(context, spec),
            episodes=spec.episodes,
            num_envs=spec.num_envs,
            seed=context.seed if spec.seed is None else spec.seed,
            out=out,
            max_episode_steps=spec.max_episode_steps,
            progress=progress,
            labeller=spec.labels,
            vector=spec.vector,
        )
    if summary.labeller is not None:
        context.log(f"townlet: {summary.policy} acted, {summary.labeller} labelled the actions")
    context.log(
        f"townlet: recorded {summary.num_trajectories} demonstrations ({summary.transitions} "
        f"steps, mean return {summary.mean_return:.1f}) in {out}"
    )


def _observation_spec(dataset: ReplayDataset) -> ObservationSpec:
    first = dataset.trajectory(0)
    names = first.metadata.get("feature_names")
    return ObservationSpec(
        features_dim=int(first.features.shape[1]),
        map_shape=_map_shape(first.map),
        feature_names=list(names) if isinstance(names, list) else None,
    )


def _quiet(_message: str) -> None:
    """A warning sink for messages `prepare` has shown already."""


def _record_dataset(
    context: TrainingContext,
    dataset: ReplayDataset,
    observation: ObservationSpec,
    space: ActionSpace,
) -> None:
    """Write `dataset.json`: what the run trains on and which rule found each file."""
    source = dataset.source
    summary = DatasetSummary(
        path=str(source.path),
        label=source.label,
        trajectories=dataset.num_trajectories,
        transitions=dataset.transitions,
        features_dim=observation.features_dim,
        map_shape=observation.map_shape,
        action_dim=space.count,
        skipped=source.skipped,
        strict_paths=source.strict_paths,
        files=tuple(source.resolution()),
        action_space=space,
    )
    atomic_write_json(context.run_dir / DATASET_RECORD, summary.as_dict())


def _map_shape(map_array: np.ndarray | None) -> tuple[int, int, int] | None:
    if map_array is None:
        return None
    channels, height, width = (int(d) for d in map_array.shape[1:])
    return channels, height, width


def _network(
    context: TrainingContext, config: BCConfig, observation: ObservationSpec, space: ActionSpace
) -> PolicyNetwork:
    if context.warm_start is not None:
        network, info = load_checkpoint(
            context.warm_start, observation=observation, action_dim=space.count, action_space=space
        )
        context.log(f"townlet: bc starts from {context.warm_start} ({info.producer.strategy})")
        return network
    return build_network(
        config.network_spec(), observation, space.count, seed=context.seed, action_space=space
    )


@torch.no_grad()
def _set_statistics(network: PolicyNetwork, split: Split | StreamedSplit) -> None:
    """The observation statistics of the training split's features: one update with the
    whole split in memory; streamed, one per chunk read (the parallel update combines them,
    equal to the whole split's to float rounding)."""
    normalizer = network.observation_normalizer
    assert normalizer is not None
    if isinstance(split, Split):
        normalizer.update(split.features)
        return
    for chunk in split.chunks(SCORE_BATCH):
        normalizer.update(chunk.features)


@torch.no_grad()
def _score(network: PolicyNetwork, split: Split | StreamedSplit) -> tuple[float, float]:
    """Mean loss and metric (accuracy, or action_mse for Box actions: `objective.py`) over
    a whole split, in evaluation mode."""
    network.eval()
    objective = objective_for(network.action_space)
    total_loss, total_metric = 0.0, 0.0
    for chunk in split.chunks(SCORE_BATCH):
        loss, metric = objective.sums(
            network, chunk.features, chunk.map, chunk.actions, chunk.masks
        )
        total_loss += loss
        total_metric += metric
    return total_loss / split.size, total_metric / split.size


def _schedule_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier for 0-based `epoch`."""
    if schedule == "linear":
        return 1.0 - epoch / epochs
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return 1.0


def _epoch(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    split: Split,
    order: torch.Tensor,
    batch_size: int,
    ranks: Ranks,
) -> LossTrace:
    """One pass over `split` in `order`; returns its mini-batch losses.

    A small split is permuted once per epoch (one vectorised copy) and batches are plain
    slices: gathering every batch separately costs more than a small network's step. A large
    one is gathered batch by batch, since copying it whole each epoch costs more again.
    """
    network.train()
    objective = objective_for(network.action_space)
    if split.nbytes <= PERMUTE_WHOLE_BYTES:
        source = split.rows(order)
        order = torch.arange(split.size, device=order.device)
    else:
        source = split
    trace = LossTrace()
    for start, stop in sharing.batch_bounds(split.size, batch_size, ranks):
        rows: slice | torch.Tensor = (
            slice(start, stop) if source is not split else order[start:stop]
        )
        actions = source.actions[rows]
        loss = _step(
            objective,
            network,
            optimizer,
            source.features[rows],
            None if source.map is None else source.map[rows],
            actions,
            None if source.masks is None else source.masks[rows],
            ranks,
        )
        trace.add(loss, len(actions))
    return trace


def _streamed_epoch(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    split: StreamedSplit,
    batch_size: int,
    epoch: int,
    ranks: Ranks,
) -> LossTrace:
    """One pass over a streamed split, shuffled from (seed, epoch); its mini-batch losses
    (across ranks: over this rank's trajectories, as many batches as every rank has)."""
    network.train()
    objective = objective_for(network.action_space)
    trace = LossTrace()
    local = sharing.local_batch_size(batch_size, ranks)
    limit = sharing.streamed_batch_count(split.size, batch_size, ranks)
    for batch in itertools.islice(split.shuffled(local, epoch), limit):
        loss = _step(
            objective,
            network,
            optimizer,
            batch.features,
            batch.map,
            batch.actions,
            batch.masks,
            ranks,
        )
        trace.add(loss, batch.size)
    return trace


def _step(
    objective: Objective,
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    map_batch: torch.Tensor | None,
    actions: torch.Tensor,
    masks: torch.Tensor | None,
    ranks: Ranks,
) -> torch.Tensor:
    """One gradient step on one batch (its gradient averaged over the ranks); returns its
    mean loss (detached)."""
    loss = objective.loss(network, features, map_batch, actions, masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    ranks.average_gradients(network.parameters())
    optimizer.step()
    return loss.detach()


def make_optimizer(
    network: PolicyNetwork, learning_rate: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Adam, fused where torch offers it (about 1.4x faster steps for these networks on CPU);
    built by `make_adam`, which also records what constructing it costs at start-up."""
    from townlet_core.nn.optim import make_adam

    return make_adam(network.parameters(), learning_rate, weight_decay=weight_decay)


def _fit(
    context: TrainingContext,
    config: BCConfig,
    network: PolicyNetwork,
    train_split: Split | StreamedSplit,
    val_split: Split | StreamedSplit | None,
    source: Path,
    ranks: Ranks,
) -> int:
    """Train for up to `config.epochs` epochs; leave the best weights in `network` (by
    validation loss when early stopping) and return the number of epochs run. Across ranks
    each trains on its share of `train_split` (`ranks.py`)."""
    objective = objective_for(network.action_space)
    metric = objective.metric
    optimizer = make_optimizer(network, config.learning_rate, config.weight_decay)
    best_state = copy.deepcopy(network.state_dict())
    best_val, stale, epochs_run = math.inf, 0, 0
    reference: float | None = None  # the run's first mini-batch loss (see divergence.py)
    # Training metric after each epoch, on a fixed sample of the training split: cheaper
    # than counting correct predictions at every step, and measured like validation.
    sample_split = sample_of(train_split, TRAIN_ACCURACY_SAMPLE, context.seed)
    own = sharing.shard(train_split, ranks)
    rank_key = [] if ranks.rank == 0 else [ranks.rank]  # rank 0 shuffles as one process does
    with context.services.progress(config.epochs, "bc", unit="epoch") as progress:
        for epoch in range(config.epochs):
            lr = config.learning_rate * _schedule_factor(config.lr_schedule, epoch, config.epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            started = time.perf_counter()
            if isinstance(own, StreamedSplit):
                trace = _streamed_epoch(network, optimizer, own, config.batch_size, epoch, ranks)
            else:
                generator = np.random.default_rng([context.seed, epoch, *rank_key])
                order = torch.from_numpy(generator.permutation(own.size)).to(own.actions.device)
                trace = _epoch(network, optimizer, own, order, config.batch_size, ranks)
            losses = trace.losses()
            if reference is None:
                reference = float(losses[0])
            check_divergence(losses, reference, epoch + 1, source, lr)
            loss = sharing.mean_loss(trace.mean(losses), trace.rows, ranks)
            _sample_loss, measured = _score(network, sample_split)
            seconds = time.perf_counter() - started
            epochs_run = epoch + 1
            record: dict[str, float | int | None] = {
                "epoch": epochs_run,
                "loss": loss,
                metric: measured,
                "lr": lr,
                "samples_per_second": train_split.size / max(seconds, 1e-9),
                "epoch_duration_sec": seconds,
            }
            val_loss = None
            if val_split is not None:
                val_loss, val_measured = _score(network, val_split)
                record.update({"val_loss": val_loss, f"val_{metric}": val_measured})
            context.metrics.log({**record, **_in_step(network, ranks, epochs_run)})
            shown = "val_mse" if objective.kind == BOX else "val_acc"
            progress.update(1, loss=loss, **{shown: record.get(f"val_{metric}")})
            if val_loss is None or config.early_stopping_patience is None:
                continue
            if val_loss < best_val - 1e-9:
                best_val, stale = val_loss, 0
                best_state = copy.deepcopy(network.state_dict())
                continue
            stale += 1
            if stale >= config.early_stopping_patience:
                context.log(f"townlet: bc stopped early after epoch {epochs_run}")
                break
    if val_split is not None and config.early_stopping_patience is not None:
        network.load_state_dict(best_state)
    return epochs_run


def _save_checkpoint(
    context: TrainingContext,
    config: BCConfig,
    network: PolicyNetwork,
    dataset: ReplayDataset,
    eval_env: str | None,
    scores: dict[str, float | None],
) -> None:
    """The cloned policy in RUN_DIR/checkpoint, with its scores and the data's action lookup."""
    lookup = dataset.trajectory(0).metadata.get("action_lookup")
    save_checkpoint(
        context.run_dir / CHECKPOINT_DIR,
        network,
        strategy=context.strategy,
        strategy_version=context.strategy_version,
        seed=context.seed,
        metrics=scores,
        action_lookup=lookup if isinstance(lookup, dict) else None,
        env_id=eval_env,
        extra=checkpoint_record(config.eval_env_settings()),
    )


def _evaluate(
    context: TrainingContext,
    config: BCConfig,
    network: PolicyNetwork,
    device: torch.device,
    eval_env: str | None,
    ranks: Ranks,
) -> EvaluationResult | None:
    """The cloned policy's greedy episodes in `eval_env` (None without one); rank 0 plays
    them and every rank receives the result."""
    if eval_env is None:
        return None
    evaluation = None
    if context.world.is_writer:
        evaluation = evaluate_policy(
            config.eval_env_settings() or eval_env,
            TorchPolicy(network, device=device, greedy=True),
            episodes=config.eval_episodes,
            seed=context.seed + EVAL_SEED_OFFSET,
        )
        context.log(
            f"townlet: cloned policy on {eval_env}: mean return {evaluation.mean_return:.1f} "
            f"over {evaluation.episodes} episodes"
        )
    result: EvaluationResult | None = ranks.broadcast(evaluation)
    return result


def _in_step(network: PolicyNetwork, ranks: Ranks, epoch: int) -> dict[str, Any]:
    """Across ranks: every rank's weights digest after the epoch (`weights_checksums` in
    the line), which must agree; nothing with one rank."""
    if not ranks.world.distributed:
        return {}
    digests = ranks.checksums(network)
    if len(set(digests)) > 1:
        raise TrainingDivergedError(
            f"BC ranks hold different weights after epoch {epoch} (digests "
            f"{', '.join(digests)}); this is a bug in townlet-strategies-bc, please report it "
            "with the run's config.json"
        )
    return {"world_size": ranks.size, "weights_checksums": digests}


def train(context: TrainingContext, config: BCConfig) -> BCTrainingResultDTO:
    """Run behaviour cloning as configured and return its result (see the module doc)."""
    with torch_threads(config.torch_threads):
        return _train(context, config)


def _splits(
    context: TrainingContext,
    config: BCConfig,
    sets: tuple[ReplayDataset, ReplayDataset | None],
    device: torch.device,
    action_dtype: torch.dtype,
    use_masks: bool,
) -> tuple[Split | StreamedSplit, Split | StreamedSplit | None]:
    """The training and validation splits, in memory on `device` or streamed from disk."""
    train_set, val_set = sets
    if config.streaming:

        def streamed(split: ReplayDataset) -> StreamedSplit:
            return StreamedSplit(
                split, device, context.seed, action_dtype=action_dtype, use_masks=use_masks
            )

        train_split = streamed(train_set)
        context.log(
            f"townlet: bc streams {train_split.size} training transitions from disk "
            f"(shuffle buffer {max(config.batch_size, train_split.shuffle_buffer)})"
        )
        return train_split, streamed(val_set) if val_set is not None else None
    in_memory = split_in_memory(train_set, device, action_dtype, use_masks)
    if val_set is None:
        return in_memory, None
    return in_memory, split_in_memory(val_set, device, action_dtype, use_masks)


def _train(context: TrainingContext, config: BCConfig) -> BCTrainingResultDTO:
    world = context.world
    device, described = select_device(rank_device(context.device, world))
    ranks = Ranks.join(world, device, context.run_dir)  # one rank: every collective a no-op
    where = f"; {world.size} ranks ({ranks.backend})" if world.distributed else ""
    context.log(f"townlet: bc training on {described}{where}")
    source, eval_env = _demonstrations(context, config, ranks)
    # prepare checked the dataset and warned about working-directory entries already
    dataset = ReplayDataset(
        source, streaming=config.streaming, strict_paths=config.strict_paths, warn=_quiet
    )
    if dataset.num_trajectories >= 2 and config.val_fraction > 0:
        train_set, val_set = dataset.split(config.val_fraction, seed=context.seed)
    else:
        if config.val_fraction > 0:
            context.log("townlet: one trajectory only: no validation split")
        train_set, val_set = dataset, None
    observation = _observation_spec(dataset)
    space = dataset.action_space
    if world.is_writer:
        _record_dataset(context, dataset, observation, space)
    network = _network(context, config, observation, space).to(device)
    ranks.broadcast_module(network)  # every rank starts from rank 0's weights
    action_dtype = network.distribution.action_dtype
    use_masks = config.use_action_masks and dataset.action_mask_width is not None
    if use_masks:
        context.log(
            f"townlet: bc trains under the recorded action masks ({dataset.action_mask_width} "
            "entries a step): illegal actions get no probability"
        )
    train_split, val_split = _splits(
        context, config, (train_set, val_set), device, action_dtype, use_masks
    )
    if network.observation_normalizer is not None and context.warm_start is None:
        _set_statistics(network, train_split)
        context.log("townlet: bc normalises observations by the training split's statistics")
    epochs_run = _fit(context, config, network, train_split, val_split, source, ranks)

    metric = objective_for(space).metric
    train_loss, train_metric = _score(network, train_split)
    val_loss, val_metric = _score(network, val_split) if val_split is not None else (None, None)
    if world.is_writer:
        scores: dict[str, float | None] = {metric: train_metric, "loss": train_loss}
        scores |= {f"val_{metric}": val_metric, "val_loss": val_loss}
        _save_checkpoint(context, config, network, dataset, eval_env, scores)
    # Box actions have no accuracy: their metric is action_mse.
    box = space.kind == BOX
    train_accuracy = None if box else train_metric
    val_accuracy = None if box else val_metric
    evaluation = _evaluate(context, config, network, device, eval_env, ranks)
    ranks.barrier()  # rank 0's files are complete before any rank returns
    status_reason = None
    achieved = val_accuracy if val_accuracy is not None else train_accuracy
    if (
        config.accept_val_accuracy is not None
        and achieved is not None  # prepare refuses the gate for Box actions
        and achieved < config.accept_val_accuracy
    ):
        status_reason = (
            f"validation accuracy {achieved:.4f} is below accept_val_accuracy "
            f"{config.accept_val_accuracy}"
        )
    return BCTrainingResultDTO(
        **context.run_fields(device=device_name(device)),
        status="failed" if status_reason else "succeeded",
        status_reason=status_reason,
        artifacts={"checkpoint": CHECKPOINT_DIR, "dataset": DATASET_RECORD}
        | ({"demonstrations": DEMONSTRATIONS_DIR} if config.dataset is None else {}),
        manifest=str(source),
        accuracy=train_accuracy,
        loss=train_loss,
        val_accuracy=val_accuracy,
        val_loss=val_loss,
        action_mse=train_metric if box else None,
        val_action_mse=val_metric if box else None,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        epochs=config.epochs,
        epochs_run=epochs_run,
        weight_decay=config.weight_decay,
        samples=train_split.size,
        val_samples=val_split.size if val_split is not None else 0,
        action_dim=space.count,
        checkpoint=CHECKPOINT_DIR,
        eval_env=eval_env,
        eval_episodes=evaluation.episodes if evaluation else None,
        eval_mean_return=evaluation.mean_return if evaluation else None,
        eval_std_return=evaluation.std_return if evaluation else None,
        eval_min_return=evaluation.min_return if evaluation else None,
        eval_max_return=evaluation.max_return if evaluation else None,
        eval_mean_length=evaluation.mean_length if evaluation else None,
    )
