"""Resuming a PPO run: what a periodic checkpoint's training state holds, and reading it back.

The trainer (`trainer.py`) calls in here at three moments: when it is built with `--resume`
(`Resumes.point`, then `Resumes.start_over` or `Resumes.restore` and `continue_environments`),
and at each checkpoint (`Resumes.training_state`). Everything else in this file serves those.

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
last update (a stop during the final checkpoint or evaluation) the trainer writes what
remains from the metrics and the early-stop flag saved in the `TrainingPosition`.
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
from townlet_core.checkpoints import STATE_FILE
from townlet_core.contract.world import World
from townlet_core.envs import snapshot
from townlet_core.errors import DataError
from townlet_core.nn import PolicyNetwork, load_checkpoint, load_training_state
from townlet_core.nn.distributed import Ranks
from townlet_core.nn.normalize import RewardScaler
from townlet_strategies_ppo import reward_scaling, telemetry
from townlet_strategies_ppo.checkpointing import Checkpoints
from townlet_strategies_ppo.rollout import CollectorState

#: The layout of the "environments" entry of a training state.
ENVIRONMENTS_FORMAT = "townlet-ppo-environments/1"
#: The critic warm-up's optimiser in a training state (runs with a warm-up only).
WARMUP_OPTIMIZER_KEY = "critic_warmup_optimizer"
#: Every resume of a run (from which update, whether it continued exactly), in the run dir.
RESUMES_FILE = "resumes.json"
#: Where a data-parallel run's training state keeps ranks 1.. own parts, and which they are.
RANK_STATES = "rank_states"
RANK_OWN = frozenset(
    {
        "shuffle_rng",
        "sampler",
        "torch_rng",
        "numpy_rng",
        "python_rng",
        "environments",
        reward_scaling.EXTRA_KEY,
    }
)


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


@dataclass(frozen=True)
class Restored:
    """A checkpoint's training state, read back and checked (but for its environments)."""

    position: TrainingPosition
    environments: Any  # the saved "environments" entry: `continue_environments` checks it
    state_path: Path


@dataclass(frozen=True)
class Restart:
    """The saved environments cannot be continued: why, and the seed fresh ones reset with."""

    reason: str
    seed: int
    run_seed: int
    update: int

    def warning(self, state_path: Path, env_id: str | None) -> str:
        return (
            f"townlet: warning: {state_path} {self.reason}. Resuming with fresh {env_id} "
            f"environments (episodes restart, seeded {self.seed} from seed {self.run_seed} and "
            f"update {self.update}): this resume is not an exact continuation (recorded in "
            f"{RESUMES_FILE})"
        )


class Resumes:
    """One run's resumes: the checkpoint to continue from, the training state each
    checkpoint saves and its reading back, and the record of every resume (`resumes.json`)."""

    def __init__(self, context: TrainingContext, checkpoints: Checkpoints) -> None:
        self.context = context
        self.checkpoints = checkpoints
        self._warned_snapshot = False

    def point(self) -> Path | None:
        """The checkpoint to resume from (None: there is none yet), after removing what
        earlier stops left behind."""
        removed = self.checkpoints.clean()
        if removed:
            self.context.log(
                f"townlet: removed what an earlier stop left behind: {', '.join(removed)}"
            )
        return self.checkpoints.latest()

    def start_over(self) -> None:
        """A resume before the first checkpoint: nothing to continue, so the run starts over
        in its directory with its recorded config and seed (equal to an uninterrupted run)."""
        self.context.log(
            f"townlet: {self.context.run_dir}: no checkpoint yet; starting the run over"
        )
        self.checkpoints.clean_all()
        self.context.metrics.truncate(0)
        self.record(0, exact=True, reason="no checkpoint yet; started the run over")

    # ------------------------------------------------------------------ saving

    def training_state(
        self,
        position: TrainingPosition,
        optimizer: torch.optim.Optimizer,
        shuffle_rng: np.random.Generator,
        sampler: torch.Generator,
        env: Any,
        collector: CollectorState | None,
        reward_scaler: RewardScaler | None = None,
        warmup_optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, Any]:
        """Everything besides the weights (which hold the observation statistics) that an
        exact resume needs, as tensors and plain values (`env` and `collector` are None in
        a replay run; `reward_scaler` without reward scaling; `warmup_optimizer` without a
        critic warm-up)."""
        state: dict[str, Any] = {
            "position": {
                k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in vars(position).items()
            },
            "optimizer": optimizer.state_dict(),
            "shuffle_rng": shuffle_rng.bit_generator.state,
            "sampler": sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_global_state(),
            "python_rng": random.getstate(),
        }
        if reward_scaler is not None:
            state[reward_scaling.EXTRA_KEY] = reward_scaler.state_dict()
        if warmup_optimizer is not None:
            state[WARMUP_OPTIMIZER_KEY] = warmup_optimizer.state_dict()
        if env is not None and collector is not None:
            state["environments"] = self._environments_state(env, collector)
        return state

    def _environments_state(self, env: Any, collector: CollectorState) -> dict[str, Any]:
        """The environments and the rollout they are in, as data (tensors and plain values
        that `torch.load(weights_only=True)` reads); an env that is not plain data is saved
        as a reason instead, and its resume restarts episodes."""
        saved: dict[str, Any] = {"format": ENVIRONMENTS_FORMAT, "snapshot": None, "reason": None}
        try:
            saved["snapshot"] = snapshot.map_bytes(snapshot.capture(env), _bytes_tensor)
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

    # ------------------------------------------------------------------ restoring

    def restore(
        self,
        latest: Path,
        network: PolicyNetwork,
        optimizer: torch.optim.Optimizer,
        shuffle_rng: np.random.Generator,
        sampler: torch.Generator,
        total_updates: int,
        reward_scaler: RewardScaler | None = None,
        warmup: tuple[torch.optim.Optimizer, int] | None = None,
    ) -> Restored:
        """Load checkpoint `latest` into the weights (observation statistics included), the
        optimiser, every generator and the reward scaling, and read its counters; anything
        that does not fit is a DataError naming `state.pt`. `warmup`: the critic warm-up's
        optimiser and its number of updates, restored when the checkpoint is inside them."""
        loaded, _info = load_checkpoint(
            latest,
            observation=network.observation,
            action_dim=network.action_dim,
            action_space=network.action_space,
        )
        network.load_state_dict(loaded.state_dict())
        state_path = latest / STATE_FILE
        state = own_state(load_training_state(latest), self.context.world, state_path)
        try:
            restore_optimizer(optimizer, state["optimizer"])
            position = read_position(
                state.get("position", state.get("progress")),  # "progress" before 0.1
                state_path,
                total_updates,
            )
            shuffle_rng.bit_generator.state = state["shuffle_rng"]
            sampler.set_state(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            _set_numpy_global_state(state["numpy_rng"])
            random.setstate(_as_tuple(state["python_rng"]))
            if warmup is not None and position.next_update < warmup[1]:
                restore_optimizer(warmup[0], state[WARMUP_OPTIMIZER_KEY])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise DataError(
                f"{state_path}: training state does not fit this run "
                f"({type(exc).__name__}: {exc}); the checkpoint is damaged or from another "
                "run, start a new run"
            ) from exc
        if reward_scaler is not None:
            saved = state.get(reward_scaling.EXTRA_KEY)
            if saved is None:
                raise DataError(
                    f"{state_path}: training state holds no reward scaling statistics, but "
                    "the run scales rewards; the checkpoint is from another run, start a new run"
                )
            reward_scaling.restore(reward_scaler, saved, state_path)
        return Restored(position, state.get("environments"), state_path)

    def resumed(self, latest: Path, position: TrainingPosition, reason: str | None) -> None:
        """Bring the metrics back to the checkpoint, say where the run continues, and record
        the resume (`reason`: why it is not an exact continuation; None when it is)."""
        self.context.metrics.truncate(position.metrics_lines)
        self.context.log(
            f"townlet: resuming {self.context.run_dir} after update {position.next_update} "
            f"from {latest.name}"
        )
        self.record(position.next_update, exact=reason is None, reason=reason)

    def record(self, update: int, *, exact: bool, reason: str | None) -> None:
        """Append this resume to `resumes.json` (the result lists the file as an artifact);
        rank 0 alone, in a data-parallel run."""
        if not self.context.world.is_writer:
            return
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


def with_rank_states(state: dict[str, Any], ranks: Ranks) -> dict[str, Any]:
    """A data-parallel run's training state: rank 0's, with what is each other rank's own
    (its generators, reward statistics and environments) under `rank_states`, gathered
    from every rank (each must call this); a single rank's state is returned as it is."""
    if not ranks.world.distributed:
        return state
    gathered = ranks.gather({k: v for k, v in state.items() if k in RANK_OWN})
    if gathered is not None:
        state[RANK_STATES] = gathered[1:]
    return state


def own_state(state: dict[str, Any], world: World, state_path: Path) -> dict[str, Any]:
    """The training state of this rank: rank 0's as saved; another rank's with its own
    parts (`with_rank_states`) in place of rank 0's. A checkpoint of a run with another
    number of ranks is a DataError (its generators and environments would not fit)."""
    saved = state.get(RANK_STATES, [])
    ranks = len(saved) + 1 if isinstance(saved, list) else None
    if ranks != world.size:
        raise DataError(
            f"{state_path}: written by a run of {ranks} rank(s), resumed with {world.size}; "
            "resume it with 'townlet train --resume RUN_DIR' alone (it uses the run's own "
            "number of processes)"
        )
    if world.rank == 0:
        return state
    own = saved[world.rank - 1]
    if not isinstance(own, dict):
        raise DataError(f"{state_path}: rank {world.rank}'s training state is damaged")
    return {**state, **own}


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """Load the optimiser's state, and check every moment tensor has its parameter's
    shape (a mismatch would otherwise surface as a crash in the middle of an update)."""
    optimizer.load_state_dict(saved)
    for parameter, moments in optimizer.state.items():
        for name, value in moments.items():
            moment = isinstance(value, torch.Tensor) and value.dim() > 0
            if moment and value.shape != parameter.shape:
                raise ValueError(
                    f"optimizer {name} has shape {tuple(value.shape)}, its parameter "
                    f"{tuple(parameter.shape)}"
                )


def read_position(saved: Any, state_path: Path, total_updates: int) -> TrainingPosition:
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


def plain_line(line: dict[str, Any]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------- global generators


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


# ---------------------------------------------------------------------- environments


def continue_environments(saved: Any, env: Any, seed: int, update: int) -> CollectorState | Restart:
    """Restore the saved environments into `env` and return the rollout's state when the
    saved entry is readable data that fits; otherwise the `Restart` to make instead (fresh
    environments, reset with a seed from (seed, update)). Nothing is unpickled."""
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
            return _continue(saved, env, seed)
        except snapshot.SnapshotError as exc:
            reason = f"holds an environment state that does not fit ({exc})"
    return Restart(reason, restart_seed(seed, update), seed, update)


def _continue(saved: dict[str, Any], env: Any, seed: int) -> CollectorState:
    env_tree = snapshot.map_bytes(saved["snapshot"], _tensor_bytes, leaf=torch.Tensor)
    collector_tree = snapshot.map_bytes(saved.get("collector"), _tensor_bytes, leaf=torch.Tensor)
    template, _info = env.reset(seed=seed)
    collector = _collector_from(snapshot.decode_data(collector_tree), template)
    snapshot.restore(env, env_tree)
    return collector


def restart_seed(seed: int, update: int) -> int:
    """The reset seed of fresh environments after update `update` (an inexact resume)."""
    sequence = np.random.SeedSequence([seed % 2**63, update])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def fresh_collector_state(
    observation: Any,
    num_envs: int,
    mask: np.ndarray | None = None,
    active: np.ndarray | None = None,
) -> CollectorState:
    """The rollout's state right after a reset to `observation` (whose action mask is
    `mask`, None without one; `active` marks the rows that act, all when None)."""
    return CollectorState(
        observation=observation,
        previous_done=np.zeros(num_envs, dtype=bool) if active is None else ~active,
        episode_return=np.zeros(num_envs),
        episode_length=np.zeros(num_envs, dtype=np.int64),
        mask=mask,
    )


def _collector_data(state: CollectorState) -> dict[str, Any]:
    data = {
        "observation": state.observation,
        "previous_done": state.previous_done,
        "episode_return": state.episode_return,
        "episode_length": state.episode_length,
        "counters": dict(state.counters),
    }
    if state.mask is not None:  # absent, as before masks existed, when there is none
        data["mask"] = state.mask
    return data


def _collector_from(data: Any, template: Any) -> CollectorState:
    """The rollout's saved state, checked against a fresh reset's `template` observation."""
    if not isinstance(data, dict):
        raise snapshot.SnapshotError("the rollout's state is missing")
    fresh = fresh_collector_state(template, len(_first_array(template)))
    observation = data.get("observation")
    _check_like(observation, template, "observation")
    for name in ("previous_done", "episode_return", "episode_length"):
        _check_like(data.get(name), getattr(fresh, name), name)
    counters = data.get("counters")
    if not isinstance(counters, dict) or not all(
        isinstance(k, str) and type(v) in (int, float) for k, v in counters.items()
    ):
        raise snapshot.SnapshotError("the rollout's counters are not numbers by name")
    mask = data.get("mask")
    if mask is not None and not (
        isinstance(mask, np.ndarray)
        and mask.dtype == np.bool_
        and mask.ndim == 2
        and mask.shape[0] == len(fresh.previous_done)
    ):
        raise snapshot.SnapshotError(
            f"the rollout's action mask is {getattr(mask, 'shape', None)}, not one boolean "
            "row per environment"
        )
    return CollectorState(
        observation=observation,
        previous_done=data["previous_done"],
        episode_return=data["episode_return"],
        episode_length=data["episode_length"],
        counters={k: float(v) for k, v in counters.items()},
        mask=mask,
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
