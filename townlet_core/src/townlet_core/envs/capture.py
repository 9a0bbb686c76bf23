"""Capture trajectories from a Gymnasium environment with a policy, without torch.

How it works, and why:

- Several copies of the environment step together through Gymnasium's vector API, and the
  policy answers for the whole batch in one call. An id with a native vector implementation
  (CartPole's `vector_entry_point`) uses it when `num_envs` is large enough for it to beat a
  `SyncVectorEnv`; every other id, and every `module:Class`, steps through `SyncVectorEnv`.
- Vector envs reset in `NEXT_STEP` mode: the step that ends an episode returns its final
  observation, and the next step of that env only resets it. That step is never recorded, so
  no episode's final observation turns up as a step of the next one, and the policy's value
  of the final observation (the bootstrap of a truncated episode) comes from the policy call
  the next step needs anyway.
- Steps go into one batched buffer, a row per vector step, so recording costs a handful of
  array assignments per step whatever the number of envs; an episode's rows are cut out
  when it ends.
- The budget is split evenly over the envs before the capture starts (env i runs its share
  of the episodes or steps, then idles). Taking whichever episodes finish first would favour
  short episodes and bias returns low; a fixed split does not, and keeps the data a function
  of `(seed, num_envs)` alone.
- With `out`, each trajectory is written (atomically, by `DatasetWriter`) as soon as it ends,
  so an interrupted capture leaves a readable dataset of every complete trajectory. A
  multi-agent env (a row per agent, `agents.py`) is written in the original Townlet capture
  layout instead, a trajectory per agent episode (`AgentCaptureWriter`).
- Actions are recorded as the env is sent them (`as_output`): ids `(T,)` for Discrete,
  `(T, A)` vectors otherwise, the space in each sample's `action_space` metadata (Discrete
  captures keep today's metadata exactly). Where the env gives action masks
  (`townlet_core.envs.masking`), each step's mask is recorded as `action_masks` (T, W).
- With a `labeller` (DAgger-style relabelling) the acting policy still drives the env, so
  the states visited are its own, but each recorded action is the labeller's answer for
  the same observation batch. The acting policy's log-probs and values describe its own
  actions, not the recorded ones, so they are recorded as zeros (and a truncated episode's
  bootstrap value too): a learner that read them as the recorded action's would be misled.

Reproducibility: the same environment, policy, `seed`, `num_envs` and budget give
byte-identical arrays. The first reset is seeded with `seed` (a SyncVectorEnv gives env i
`seed + i`, a native vector env seeds its one generator), later resets continue those
generators; a "random" policy draws from its own stream derived from `seed`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from townlet_core.__about__ import __version__
from townlet_core.data.action_space import BOX, DISCRETE, ActionSpace
from townlet_core.data.trajectory import Trajectory, build_trajectory
from townlet_core.data.writer import AgentCaptureWriter, DatasetWriter
from townlet_core.envs.active import active_rows
from townlet_core.envs.make import make_vector_env, observation_layout
from townlet_core.envs.masking import StepMasks, check_mask_key
from townlet_core.envs.policies import Policy, PolicyOutput, accepts_action_mask, as_output
from townlet_core.envs.resolve import resolve_policy
from townlet_core.envs.settings import EnvSettings, VectorMode
from townlet_core.envs.spaces import action_space_of
from townlet_core.errors import ConfigError

#: Info keys that are not per-step counters (Gymnasium's own bookkeeping).
IGNORED_INFO_KEYS = frozenset({"final_obs", "final_info", "episode"})


class ProgressLike(Protocol):
    """What capture needs of a progress display (`townlet_core.runtime.progress.Progress` fits)."""

    def update(self, n: int = 1, **postfix: Any) -> None: ...


@dataclass(frozen=True)
class CaptureSummary:
    """What a capture produced. `trajectories` holds them only when nothing was written."""

    env_id: str
    policy: str
    seed: int
    num_envs: int
    vectorization: str
    transitions: int
    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    seconds: float
    path: Path | None = None
    trajectories: tuple[Trajectory, ...] = field(default=(), repr=False)
    #: Mean share of the action mask's entries that were masked out, over the recorded
    #: steps; None when the env gave no masks.
    action_blocked_ratio: float | None = None
    #: Who chose the recorded actions when not the acting `policy` (DAgger-style
    #: relabelling); None when the acting policy's own actions were recorded.
    labeller: str | None = None

    @property
    def num_trajectories(self) -> int:
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan

    @property
    def transitions_per_second(self) -> float:
        return self.transitions / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, return and length statistics, where the data went."""
        returns = np.asarray(self.returns, dtype=np.float64)
        lengths = np.asarray(self.lengths, dtype=np.float64)

        def stats(values: np.ndarray) -> dict[str, float | None]:
            if values.size == 0:
                return {"mean": None, "std": None, "min": None, "max": None}
            return {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
            }

        out: dict[str, Any] = {
            "env_id": self.env_id,
            "policy": self.policy,
            "labeller": self.labeller,
            "seed": self.seed,
            "num_envs": self.num_envs,
            "vectorization": self.vectorization,
            "trajectories": self.num_trajectories,
            "transitions": self.transitions,
            "return": stats(returns),
            "length": stats(lengths),
            "seconds": self.seconds,
            "transitions_per_second": self.transitions_per_second,
            "path": str(self.path) if self.path is not None else None,
        }
        if self.action_blocked_ratio is not None:
            out["action_blocked_ratio"] = self.action_blocked_ratio
        return out


# --- recording -----------------------------------------------------------------------------


class _StepBuffer:
    """One row per vector step, a column per env; episodes are cut out by (env, rows)."""

    def __init__(
        self, num_envs: int, layout: Mapping[str, tuple[int, ...]], space: ActionSpace
    ) -> None:
        self.num_envs = num_envs
        self.capacity = 256
        self.base = 0  # global index of local row 0
        self.used = 0
        actions: tuple[tuple[int, ...], type[np.generic]] = (
            ((), np.int64)
            if space.kind == DISCRETE
            else (space.shape, np.float32 if space.kind == BOX else np.int64)
        )
        self.shapes: dict[str, tuple[tuple[int, ...], type[np.generic]]] = {
            **{name: (shape, np.float32) for name, shape in layout.items()},
            "actions": actions,
            "old_log_probs": ((), np.float32),
            "value_preds": ((), np.float32),
            "rewards": ((), np.float32),
            "terminated": ((), np.bool_),
            "truncated": ((), np.bool_),
        }
        self.arrays = {
            name: np.zeros((self.capacity, num_envs, *shape), dtype=dtype)
            for name, (shape, dtype) in self.shapes.items()
        }

    @property
    def full(self) -> bool:
        return self.used == self.capacity

    def add_masks(self, width: int) -> None:
        """Start recording `action_masks` (W,) per step; rows before now allow everything."""
        self.shapes["action_masks"] = ((width,), np.bool_)
        self.arrays["action_masks"] = np.ones((self.capacity, self.num_envs, width), np.bool_)

    def make_room(self, keep_from: int) -> None:
        """Drop rows before global row `keep_from`; double the capacity if still over half full."""
        drop = keep_from - self.base
        kept = self.used - drop
        if kept > self.capacity // 2:
            self.capacity *= 2
        for name, array in self.arrays.items():
            # Fresh zeroed rows: a row a policy leaves without log-probs or values reads 0.
            fresh = np.zeros((self.capacity, *array.shape[1:]), dtype=array.dtype)
            fresh[:kept] = array[drop : self.used]
            self.arrays[name] = fresh
        self.base, self.used = keep_from, kept

    def take(self, env: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Contiguous copies of rows [start, stop) of one env."""
        first, last = start - self.base, stop - self.base
        return {name: array[first:last, env].copy() for name, array in self.arrays.items()}


class _Counters:
    """Sums of numeric scalar `info` entries per env, for the episode being recorded."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.sums: dict[str, np.ndarray] = {}
        self.seen: dict[str, np.ndarray] = {}
        self.integer: dict[str, bool] = {}

    def add(self, info: Mapping[str, Any], recording: np.ndarray) -> None:
        for key, value in info.items():
            if key.startswith("_") or key in IGNORED_INFO_KEYS:
                continue
            if not isinstance(value, np.ndarray) or value.shape != (self.num_envs,):
                continue
            if value.dtype.kind not in "iuf":
                continue
            present = info.get(f"_{key}")
            mask = recording if present is None else recording & present
            if key not in self.sums:
                self.sums[key] = np.zeros(self.num_envs, dtype=np.float64)
                self.seen[key] = np.zeros(self.num_envs, dtype=np.bool_)
                self.integer[key] = value.dtype.kind in "iu"
            self.sums[key] += np.where(mask, value, 0)
            self.seen[key] |= mask
            self.integer[key] &= value.dtype.kind in "iu"

    def pop(self, env: int) -> dict[str, float | int]:
        """This env's counters (only those it reported), then zero them for its next episode."""
        counters: dict[str, float | int] = {}
        for key, sums in self.sums.items():
            if self.seen[key][env]:
                total = float(sums[env])
                counters[key] = round(total) if self.integer[key] else total
            sums[env] = 0.0
            self.seen[key][env] = False
        return counters


def _quotas(episodes: int | None, steps: int | None, num_envs: int) -> np.ndarray:
    """Each env's share of the budget (episodes or transitions)."""
    if (episodes is None) == (steps is None):
        raise ConfigError("pass exactly one of episodes or steps (the capture budget)")
    total = episodes if episodes is not None else steps
    name = "episodes" if episodes is not None else "steps"
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ConfigError(f"{name} must be a positive integer, got {total!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
    quotas = np.full(num_envs, total // num_envs, dtype=np.int64)
    quotas[: total % num_envs] += 1
    return quotas


def _policy_name(policy: Policy | str) -> str:
    if isinstance(policy, str):
        return policy
    name = getattr(policy, "__qualname__", None) or type(policy).__qualname__
    return f"{getattr(policy, '__module__', '?')}:{name}"


class _Capture:
    """The state of one capture: buffer, per-env progress, counters and the output.

    Per env: `idle` (its share of the budget is used up), `resetting` (its next step is the
    NEXT_STEP reset, or its agent has left a multi-agent world that goes on: not recorded,
    until `info["agent_active"]` says the row acts again) and `start` (global row of its
    open episode's first step).
    `recording` caches `~(idle | resetting)`; it changes only when an episode ends.
    """

    def __init__(
        self,
        *,
        env_id: str,
        seed: int,
        quotas: np.ndarray,
        by_steps: bool,
        layout: Mapping[str, tuple[int, ...]],
        space: ActionSpace,
        masks: StepMasks,
        feature_names: list[str] | None,
        writer: DatasetWriter | None,
        keep: bool,
        progress: ProgressLike | None,
        agents: tuple[str, ...] | None = None,
        sample_fields: Mapping[str, Any] | None = None,
    ) -> None:
        num_envs = int(quotas.shape[0])
        self.agents = agents
        self.sample_fields = dict(sample_fields or {})
        self.env_id = env_id
        self.seed = seed
        self.by_steps = by_steps
        self.space = space
        self.action_dim = space.count
        self.masks = masks
        self.observation_keys = tuple(layout)
        self.feature_names = feature_names
        self.map_shape = list(layout["map"]) if "map" in layout else None
        self.writer = writer
        self.keep = keep
        self.progress = progress
        self.buffer = _StepBuffer(num_envs, layout, space)
        self.recording_masks = False
        self.blocked = 0.0  # sum over recorded steps of the share of mask entries masked out
        self.masked_steps = 0
        self.counters = _Counters(num_envs)
        self.left = quotas.copy()
        self.idle = quotas == 0
        self.resetting = np.zeros(num_envs, dtype=np.bool_)
        self.recording = ~self.idle
        self.recording_count = int(self.recording.sum())
        self.start = np.zeros(num_envs, dtype=np.int64)
        self.env_episodes = np.zeros(num_envs, dtype=np.int64)
        self.transitions = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.kept: list[Trajectory] = []

    @property
    def running(self) -> bool:
        return not self.idle.all()

    def _refresh(self) -> None:
        self.recording = ~(self.idle | self.resetting)
        self.recording_count = int(self.recording.sum())

    def begin(self, info: Mapping[str, Any]) -> None:
        """After the first reset: a row whose agent is not in its world yet (a multi-agent
        env, `agents.py`) waits as a NEXT_STEP reset does, until its agent is active."""
        self.resetting |= ~active_rows(info, len(self.resetting)) & ~self.idle
        self._refresh()

    def keep_from(self) -> int:
        """The first row an episode still being recorded needs (rows before it can go)."""
        if self.recording.any():
            return int(self.start[self.recording].min())
        return self.buffer.base + self.buffer.used

    def write_inputs(
        self, observation: Any, output: PolicyOutput, mask: np.ndarray | None = None
    ) -> int:
        """Record what the policy saw (its mask too) and did, before the env step reuses
        its buffers. Returns the step's global row.
        """
        buffer = self.buffer
        if buffer.full:
            buffer.make_room(self.keep_from())
        row = buffer.used
        buffer.used += 1
        arrays = buffer.arrays
        if isinstance(observation, Mapping):
            for name in self.observation_keys:  # a mask's observation key is no feature
                arrays[name][row] = observation[name]
        else:
            arrays["features"][row] = observation
        arrays["actions"][row] = output.actions
        if mask is not None:
            if not self.recording_masks:
                buffer.add_masks(self.masks.width)
                self.recording_masks = True
            arrays["action_masks"][row] = mask
            self.blocked += float((~mask[self.recording]).sum()) / self.masks.width
            self.masked_steps += self.recording_count
        elif self.recording_masks:
            arrays["action_masks"][row] = True
        if output.log_probs is not None:
            arrays["old_log_probs"][row] = output.log_probs
        if output.values is not None:
            arrays["value_preds"][row] = output.values
        return buffer.base + row

    def write_outcome(
        self,
        row: int,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: Mapping[str, Any],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Record the step's outcome; (finished envs, envs cut by the budget) or None."""
        local = row - self.buffer.base
        arrays = self.buffer.arrays
        arrays["rewards"][local] = rewards
        arrays["terminated"][local] = terminated
        arrays["truncated"][local] = truncated
        recording = self.recording
        if info:
            self.counters.add(info, recording)
        self.transitions += self.recording_count
        if self.resetting.any():
            starting = self.resetting & active_rows(info, len(self.resetting))
            self.start[starting] = row + 1
            self.resetting &= ~starting
            self._refresh()
        finished = (terminated | truncated) & recording
        if self.by_steps:
            self.left -= recording
            cut = (self.left == 0) & recording & ~finished
            finished |= cut
        if not finished.any():
            return None
        if not self.by_steps:
            cut = np.zeros_like(finished)
            self.left -= finished
        self.idle |= finished & (self.left == 0)
        self.resetting |= finished & ~cut & ~self.idle
        self._refresh()
        return finished, cut

    def finish(self, env: int, row: int, cut: bool, bootstrap: float) -> None:
        """Cut out env's episode ending at `row`, build the trajectory and write or keep it."""
        if self.writer is None and not self.keep:
            self._tally(env, row)
            return
        arrays = self.buffer.take(env, int(self.start[env]), row + 1)
        if cut:
            arrays["truncated"][-1] = True
        arrays["dones"] = arrays["terminated"] | arrays["truncated"]
        arrays["value_preds"] = np.append(arrays["value_preds"], np.float32(bootstrap))
        length = int(arrays["actions"].shape[0])
        episode_return = float(arrays["rewards"].sum(dtype=np.float64))
        episode = len(self.returns)
        metadata: dict[str, Any] = {
            "env_id": self.env_id,
            "episode": episode,
            "env_index": env,
            "env_episode": int(self.env_episodes[env]),
            "seed": self.seed,
            "action_dim": self.action_dim,
            "feature_names": self.feature_names,
            "return": episode_return,
            "length": length,
            "terminated": bool(arrays["terminated"][-1]),
            "truncated": bool(arrays["truncated"][-1]),
            "cut_by_budget": cut,
            "counters": self.counters.pop(env),
        }
        if self.map_shape is not None:
            metadata["map_shape"] = self.map_shape
        metadata.update(self.sample_fields)
        if self.agents is not None:  # a row per agent: the original's per-agent fields
            slot = env % len(self.agents)
            metadata.update(
                agent_id=self.agents[slot],
                embedding_slot=slot,
                world=env // len(self.agents),
                frame_count=length,
            )
        if self.space.kind != DISCRETE:  # Discrete samples keep the original metadata
            metadata["action_space"] = self.space.as_dict()
        if self.recording_masks:
            metadata["action_masks"] = {"width": self.masks.width, "source": self.masks.source}
        where = f"{self.env_id} episode {episode} (env {env})"
        trajectory = build_trajectory(arrays, metadata, source=where)
        trajectory.source = None
        self.env_episodes[env] += 1
        self.returns.append(episode_return)
        self.lengths.append(length)
        if self.writer is not None:
            self.writer.add(trajectory)
        else:
            self.kept.append(trajectory)

    def _tally(self, env: int, row: int) -> None:
        """Only the return and length of env's episode ending at `row` (nothing is kept)."""
        first, last = int(self.start[env]) - self.buffer.base, row + 1 - self.buffer.base
        rewards = self.buffer.arrays["rewards"][first:last, env]
        self.counters.pop(env)
        self.env_episodes[env] += 1
        self.returns.append(float(rewards.sum(dtype=np.float64)))
        self.lengths.append(last - first)

    def report(self, transitions: int, episodes: int) -> None:
        if self.progress is None:
            return
        done = len(self.returns)
        mean = sum(self.returns) / done if done else math.nan
        self.progress.update(
            transitions if self.by_steps else episodes, episodes=done, mean_return=mean
        )


def capture(
    env_id: str | EnvSettings,
    policy: Policy | str,
    *,
    episodes: int | None = None,
    steps: int | None = None,
    num_envs: int = 1,
    seed: int = 0,
    out: Path | None = None,
    max_episode_steps: int | None = None,
    progress: ProgressLike | None = None,
    keep: bool = True,
    action_mask_key: str | None = None,
    labeller: Policy | str | None = None,
    vector: VectorMode = "sync",
) -> CaptureSummary:
    """Run `policy` in `num_envs` copies of `env_id` and record trajectories.

    `env_id` is a registered Gymnasium id or `module:Class`, or `EnvSettings` (kwargs and
    wrappers too; `max_episode_steps`, when given, overrides its limit, and the manifest
    records the kwargs and wrappers as data); `policy` a callable (see
    `townlet_core.envs.policies`) or a spec for `resolve_policy` ("scripted", "random",
    "module:factory"). The budget is exactly one of `episodes` (that many complete
    trajectories) or `steps` (that many transitions in all; an episode still running when
    its env's share runs out is kept with its last step marked truncated and
    `cut_by_budget: true` in its metadata). With `out`, trajectories are written there as
    they end and the summary carries none; without, the summary holds them unless `keep` is
    false (evaluation needs only returns and lengths). `progress` is advanced by transitions
    (steps budget) or finished episodes (episodes budget).

    Actions may be Discrete, Box, MultiDiscrete or MultiBinary (see `as_output` for what a
    policy returns; Box actions are clipped into the bounds, and recorded as sent). Masks
    (Discrete and MultiDiscrete) come from `info["action_mask"]`, or from the observation
    key `action_mask_key` (or the settings' own; not recorded as a feature); a policy with
    `accepts_action_mask` is given them, an action a mask forbids is a ConfigError naming
    the step, and the masks are recorded as each sample's `action_masks` (T, W).

    `labeller` (a policy or spec as for `policy`) relabels, DAgger-style: the env is stepped
    with `policy`'s actions, but the action recorded for each step is the labeller's for
    the same observations (checked as the acting policy's are: `as_output`, and the mask).
    Log-probs and values are then recorded as zeros, since the acting policy's belong to
    its own actions, not the recorded ones; the manifest and summary name the labeller. A
    "random" labeller draws from the stream of `seed + 1`, so that it does not repeat a
    random acting policy's choices.

    `vector` says where the copies step (`make_vector_env`): "async" in worker processes,
    which record the same data as "sync" for the same seed, since each copy is seeded and
    stepped exactly as a `SyncVectorEnv` would.
    """
    _quotas(episodes, steps, num_envs)  # the budget's errors before anything is built
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be a positive integer, got {max_episode_steps}")
    env_settings = EnvSettings.of(env_id, max_episode_steps)
    if action_mask_key is not None:
        env_settings = env_settings.model_copy(update={"action_mask_key": action_mask_key})
    action_mask_key = env_settings.action_mask_key
    env_id, max_episode_steps = env_settings.id, env_settings.max_episode_steps
    env, vectorization = make_vector_env(env_settings, num_envs, vector=vector)
    num_envs = int(env.num_envs)  # a multi-agent env's rows: at least one whole world
    quotas = _quotas(episodes, steps, num_envs)
    try:
        space = action_space_of(env.single_action_space, env_id)
        policy_name = _policy_name(policy)
        masks = StepMasks(space, action_mask_key, policy_name)
        check_mask_key(env.single_observation_space, action_mask_key, env_id)
        layout = observation_layout(env.single_observation_space, env_id, action_mask_key)
        if policy == "scripted" or labeller == "scripted":
            check_expert_observations(env, env_settings)
        acting = (_resolved(policy, env, env_id, seed, layout), policy_name)
        labelling = None
        if labeller is not None:
            # A random labeller gets its own stream: with `seed` it would repeat a random actor.
            labelling = (_resolved(labeller, env, env_id, seed + 1, layout), _policy_name(labeller))
        labeller_name = None if labelling is None else labelling[1]
        settings = _recorded_settings(
            env_settings,
            space,
            policy=policy_name,
            labeller=labeller_name,
            seed=seed,
            num_envs=num_envs,
            episodes=episodes,
            steps=steps,
            vectorization=vectorization,
        )
        agents = tuple(env.agents) if vectorization == "agents" else None
        writer = None if out is None else _open_writer(out, settings, agents is not None)
        names = env.metadata.get("feature_names")
        state = _Capture(
            env_id=env_id,
            seed=seed,
            quotas=quotas,
            by_steps=steps is not None,
            layout=layout,
            space=space,
            masks=masks,
            feature_names=[str(n) for n in names] if names is not None else None,
            writer=writer,
            keep=keep,
            progress=progress,
            agents=agents,
            sample_fields=_sample_fields(env.metadata),
        )
        started = time.perf_counter()
        try:
            _run(env, acting, labelling, state, seed)
        except KeyboardInterrupt:
            if writer is not None:
                writer.update_metadata(interrupted=True, **_totals(state))
            raise
        seconds = time.perf_counter() - started
        if writer is not None:
            writer.update_metadata(interrupted=False, **_totals(state))
    finally:
        env.close()
    blocked = state.blocked / state.masked_steps if state.masked_steps else None
    return CaptureSummary(
        env_id=env_id,
        policy=policy_name,
        seed=seed,
        num_envs=num_envs,
        vectorization=vectorization,
        transitions=state.transitions,
        returns=tuple(state.returns),
        lengths=tuple(state.lengths),
        seconds=seconds,
        path=out,
        trajectories=tuple(state.kept),
        action_blocked_ratio=blocked,
        labeller=labeller_name,
    )


#: Fields of the original Townlet sample metadata an env may declare in its `metadata`
#: (the built-in town does), copied into every sample it records.
SAMPLE_FIELDS = ("variant", "map_channels", "action_lookup")


def _sample_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What of `SAMPLE_FIELDS` the env declares (as JSON data: lists, str keys)."""
    fields: dict[str, Any] = {}
    if isinstance(metadata.get("variant"), str):
        fields["variant"] = metadata["variant"]
    if isinstance(metadata.get("map_channels"), (list, tuple)):
        fields["map_channels"] = [str(c) for c in metadata["map_channels"]]
    if isinstance(metadata.get("action_lookup"), Mapping):
        fields["action_lookup"] = {str(k): int(v) for k, v in metadata["action_lookup"].items()}
    return fields


def _recorded_settings(
    env_settings: EnvSettings,
    space: ActionSpace,
    *,
    policy: str,
    labeller: str | None,
    seed: int,
    num_envs: int,
    episodes: int | None,
    steps: int | None,
    vectorization: str,
) -> dict[str, Any]:
    """What the manifest records of how the capture was made (as data: nothing reads it
    back to import); keys a capture does not use are left out, so older manifests match."""
    settings: dict[str, Any] = {
        "env_id": env_settings.id,
        "policy": policy,
        "seed": seed,
        "num_envs": num_envs,
        "episodes": episodes,
        "steps": steps,
        "max_episode_steps": env_settings.max_episode_steps,
        "vectorization": vectorization,
    }
    if space.kind != DISCRETE:  # Discrete captures keep today's manifest exactly
        settings["action_space"] = space.as_dict()
    if not env_settings.plain:
        recorded = env_settings.as_data()
        settings.update(env_kwargs=recorded["kwargs"], wrappers=recorded["wrappers"])
    if env_settings.action_mask_key is not None:
        settings["action_mask_key"] = env_settings.action_mask_key
    if labeller is not None:  # captures without one keep today's manifest exactly
        settings["labeller"] = labeller
    return settings


def _resolved(
    policy: Policy | str,
    env: Any,
    env_id: str,
    seed: int,
    layout: Mapping[str, tuple[int, ...]],
) -> Policy:
    """The callable for a policy or spec (`resolve_policy`)."""
    if isinstance(policy, str):
        return resolve_policy(policy, env_id, env.single_action_space, seed, layout=layout)
    return policy


def check_expert_observations(env: Any, settings: EnvSettings) -> None:
    """The scripted experts read the raw observation of their env: refuse wrappers that
    change it (a frame stack), which would make an expert act on the wrong numbers."""
    subs = getattr(env, "envs", None)
    if not settings.wrappers or not subs:
        return
    raw, wrapped = subs[0].unwrapped.observation_space, env.single_observation_space
    if raw != wrapped:
        raise ConfigError(
            f"the scripted expert for '{settings.id}' acts on its raw observations "
            f"{raw}, but the wrappers change them to {wrapped}; capture with the random "
            "policy, a checkpoint or a module:factory that expects the wrapped observation, "
            "or leave out the wrappers that change it"
        )


def _answerer(
    policy: Policy, name: str, state: _Capture
) -> Callable[[Any, np.ndarray | None, int], PolicyOutput]:
    """Call `policy` on a batch (with `action_mask=` when it accepts one) and check its
    answer: shapes and range (`as_output`), and that the mask allows every action."""
    num_envs, space = state.buffer.num_envs, state.space
    masks = state.masks
    if name != masks.policy_name:  # mask errors name whoever chose the action
        masks = StepMasks(masks.space, masks.observation_key, name)
    wants_mask = accepts_action_mask(policy)
    masked: Callable[..., object] = policy  # called with action_mask= when it accepts one

    def answer(observation: Any, mask: np.ndarray | None, step: int) -> PolicyOutput:
        if mask is None:
            return as_output(policy(observation), num_envs, space, name)
        result = masked(observation, action_mask=mask) if wants_mask else policy(observation)
        output = as_output(result, num_envs, space, name)
        masks.check(mask, output.actions, step)
        return output

    return answer


def _run(
    env: Any,
    acting: tuple[Policy, str],
    labelling: tuple[Policy, str] | None,
    state: _Capture,
    seed: int,
) -> None:
    """Step until every env has used its share of the budget.

    `acting` drives the env; what is recorded is its output, or with `labelling` the
    labeller's actions for the same observations (no log-probs or values: see `capture`).
    """
    act = _answerer(*acting, state)
    label = None if labelling is None else _answerer(*labelling, state)
    step = 0

    def decide(observation: Any, mask: np.ndarray | None) -> tuple[PolicyOutput, PolicyOutput]:
        """(what the env is sent, what is recorded)."""
        output = act(observation, mask, step)
        if label is None:
            return output, output
        return output, PolicyOutput(label(observation, mask, step).actions)

    observation, info = env.reset(seed=seed)
    state.begin(info)
    mask = state.masks.read(observation, info, step)
    output, written = decide(observation, mask)
    while True:
        row = state.write_inputs(observation, written, mask)
        recorded = state.recording_count
        observation, rewards, terminated, truncated, info = env.step(output.actions)
        step += 1
        mask = state.masks.read(observation, info, step)
        ended = state.write_outcome(row, rewards, terminated, truncated, info)
        if ended is None:  # the common case: every episode goes on
            output, written = decide(observation, mask)
            state.report(recorded, 0)
            continue
        finished, cut = ended
        # A truncated episode's bootstrap is the policy's value of its final observation,
        # which the next policy call (on `observation`) computes; write the others first so
        # that an interrupt in that call loses none of them. A relabelled capture records
        # no values, so its bootstraps are 0.
        wants_value = finished & (cut | truncated) & ~terminated
        if written.values is None:
            wants_value[:] = False
        for env_index in np.flatnonzero(finished & ~wants_value):
            state.finish(int(env_index), row, bool(cut[env_index]), 0.0)
        running = state.running
        if running or wants_value.any():
            output, written = decide(observation, mask)
        values = written.values
        for env_index in np.flatnonzero(wants_value):
            bootstrap = 0.0 if values is None else float(values[env_index])
            state.finish(int(env_index), row, bool(cut[env_index]), bootstrap)
        state.report(recorded, int(finished.sum()))
        if not running:
            return


def _totals(state: _Capture) -> dict[str, Any]:
    returns = state.returns
    totals: dict[str, Any] = {
        "trajectories": len(returns),
        "transitions": sum(state.lengths),
        "mean_return": sum(returns) / len(returns) if returns else None,
    }
    if state.masked_steps:
        totals["action_blocked_ratio"] = state.blocked / state.masked_steps
    return totals


def _open_writer(out: Path, settings: Mapping[str, Any], per_agent: bool) -> DatasetWriter:
    """The dataset folder, its manifest carrying the capture settings and versions; a
    multi-agent capture in the original Townlet layout (`AgentCaptureWriter`)."""
    import gymnasium

    metadata = {
        **settings,
        "townlet_core_version": __version__,
        "gymnasium_version": str(gymnasium.__version__),
    }
    if per_agent:
        return AgentCaptureWriter(out, metadata=metadata)
    return DatasetWriter(out, prefix="traj", metadata=metadata)


__all__ = [
    "CaptureSummary",
    "ProgressLike",
    "capture",
    "check_expert_observations",
]
