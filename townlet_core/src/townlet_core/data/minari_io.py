"""Move episodes between local Minari datasets and Townlet datasets, losslessly both ways.

Minari (Farama's offline-RL dataset format) is an optional extra: `minari` is imported
inside `import_minari` / `export_minari` only, so the data layer stays importable (and
torch-free, Minari needs no torch) without it. Neither function ever touches the network:
Minari's own downloader is never called, and a dataset that is not on disk is an error that
says how to fetch it on a connected machine.

How a Minari episode maps onto a Townlet trajectory (one trajectory per episode):

- observations: Minari keeps T+1 of them (the one after the last step included). The first
  T become `features` (T, F) (and `map` (T, C, H, W) for a Dict space with a `map` key);
  the last one is kept in the trajectory's metadata as `final_observation` (JSON lists,
  which hold every float64, float32 and integer value exactly).
- Townlet stores observations, maps and rewards as float32. When the source values do not
  all survive a trip through float32 (float64 data, large integers) the original array is
  kept beside them as an extra (`features_exact`, `map_exact`, `rewards_exact`).
- `minari_arrays` in each trajectory's metadata records every Minari array's dtype and
  per-step shape, so the export puts back the same dtypes and shapes.
- actions: `Discrete` ones become ids (T,); `Box` ones floats (T, A), a multi-dimensional
  Box flattened to A numbers (its shape is restored on export), float32 with an exact copy
  (`actions_exact`) where float32 would round; `MultiDiscrete` and `MultiBinary` ones integers
  (T, A). A `start` offset (Discrete, MultiDiscrete) is removed on import (Townlet values
  start at 0) and added back on export. The space goes into each trajectory's metadata
  (`action_dim`, or `action_space` with Box bounds or `nvec`).
- terminations and truncations become the `terminated` and `truncated` extras, and their
  union `dones`.
- Minari has no policy outputs, so `old_log_probs` are zeros (T) and `value_preds` zeros
  (T+1); a strategy that needs them must recompute them.
- per-step `infos` are not carried (their keys are listed in the metadata as
  `minari_infos_dropped`); the episode's `seed` is.

Exporting a dataset Townlet wrote itself (no `final_observation`) repeats each trajectory's
last observation as its final one; such episodes carry `townlet_final_observation =
"repeated_last"` in their Minari episode metadata and the dataset description says how many.
Its arrays keep Townlet's dtypes (float32 observations and rewards, int64 actions), its
observation space is an unbounded Box (a Dict of `features` and `map` when there is a map),
its action space Discrete(action ids seen or declared), or for vector actions a Box (its
declared bounds, else unbounded), MultiDiscrete (nvec declared or seen) or MultiBinary, and
without `terminated`/`truncated`
extras `dones` are recorded as terminations and nothing as truncated. Exports are written in
Minari's HDF5 format with JPEG encoding off, so image observations are stored exactly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data.action_space import (
    BOX,
    DISCRETE,
    METADATA_KEY,
    MULTI_BINARY,
    MULTI_DISCRETE,
    ActionSpace,
)
from townlet_core.data.dataset import ReplayDataset
from townlet_core.data.trajectory import Trajectory, build_trajectory
from townlet_core.data.writer import DatasetWriter
from townlet_core.errors import ConfigError, DataError

#: The message (and fix) when the optional dependency is missing.
MINARI_HINT = "Minari support needs the extra: pip install 'townlet-core[minari]'"
#: The variable Minari reads for its local dataset folder.
MINARI_PATH_ENV = "MINARI_DATASETS_PATH"
#: Observation parts Townlet knows, in the order a Dict observation lists them.
_PARTS = ("features", "map")
#: Minari metadata that describes a dataset rather than its current contents.
_SKIPPED_METADATA = ("total_episodes", "total_steps", "dataset_size")
#: Minari metadata put back on export after the dataset is created.
_RESTORED_METADATA = (
    "eval_env_spec",
    "ref_min_score",
    "ref_max_score",
    "num_episodes_average_score",
)


@dataclass(frozen=True)
class ImportSummary:
    """What `import_minari` wrote."""

    dataset_id: str
    out: Path
    episodes: int
    transitions: int


@dataclass(frozen=True)
class ExportSummary:
    """What `export_minari` wrote; `location` is the new Minari dataset's folder."""

    dataset_id: str
    location: Path
    episodes: int
    transitions: int
    #: Episodes without a stored final observation, whose last observation was repeated.
    repeated_final_observations: int


@dataclass(frozen=True)
class _Minari:
    """The few Minari entry points used here (Minari ships no type information)."""

    minari_dataset: Any
    episode_buffer: Any
    parse_dataset_id: Any
    deserialize_space: Any
    read_raw_metadata: Any
    create_dataset_from_buffers: Any


def _minari() -> _Minari:
    """Import Minari now; a missing package is a ConfigError naming the extra."""
    try:
        import minari  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from minari.data_collector import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            EpisodeBuffer,
        )
        from minari.dataset.minari_dataset import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            MinariDataset,
            parse_dataset_id,
        )
        from minari.dataset.minari_storage import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            MinariStorage,
        )
        from minari.serialization import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            deserialize_space,
        )
    except ImportError as exc:
        raise ConfigError(MINARI_HINT) from exc
    return _Minari(
        minari_dataset=MinariDataset,
        episode_buffer=EpisodeBuffer,
        parse_dataset_id=parse_dataset_id,
        deserialize_space=deserialize_space,
        read_raw_metadata=MinariStorage.read_raw_metadata,
        create_dataset_from_buffers=minari.create_dataset_from_buffers,
    )


def datasets_root(data_path: Path | None = None) -> Path:
    """Minari's local dataset folder: `data_path`, else $MINARI_DATASETS_PATH, else
    ~/.minari/datasets (Minari's own rule, computed here without creating the folder)."""
    if data_path is not None:
        return Path(data_path).expanduser()
    configured = os.environ.get(MINARI_PATH_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def _minari_root(data_path: Path | None) -> Iterator[None]:
    """Point Minari's folder-level calls (which read only the environment) at `data_path`.

    The variable is process-wide while the block runs, so two threads must not export to
    different folders at the same time.
    """
    if data_path is None:
        yield
        return
    previous = os.environ.get(MINARI_PATH_ENV)
    os.environ[MINARI_PATH_ENV] = str(datasets_root(data_path))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MINARI_PATH_ENV, None)
        else:
            os.environ[MINARI_PATH_ENV] = previous


def _check_id(api: _Minari, dataset_id: str) -> None:
    try:
        api.parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{dataset_id!r} is not a Minari dataset id; ids look like [namespace/]name-vN, "
            "for example townlet/cartpole-random-v0"
        ) from exc


# ---------------------------------------------------------------------------------- import


def _observation_parts(space: Any, dataset_id: str) -> tuple[str, tuple[str, ...]]:
    """('array', ('features',)) for a Box or Discrete space, ('dict', keys) for a Dict one."""
    from gymnasium import spaces

    unsupported = DataError(
        f"Minari dataset {dataset_id}: observation space {space} is not supported; Townlet "
        "imports Box or Discrete observations, or a Dict with a 'features' key and an optional "
        "3-D 'map' Box (channels, height, width)"
    )
    if isinstance(space, (spaces.Box, spaces.Discrete)):
        return "array", ("features",)
    if not isinstance(space, spaces.Dict):
        raise unsupported
    keys = set(space.spaces)
    if "features" not in keys or not keys <= set(_PARTS):
        raise unsupported
    for key, sub in space.spaces.items():
        if not isinstance(sub, (spaces.Box, spaces.Discrete)):
            raise unsupported
        if key == "map" and len(sub.shape or ()) != 3:
            raise unsupported
    return "dict", tuple(part for part in _PARTS if part in keys)


def _describe(array: np.ndarray) -> dict[str, Any]:
    """Dtype and per-step shape (leading axis dropped): what the export restores."""
    return {"dtype": str(array.dtype), "shape": list(array.shape[1:])}


def _numeric(array: np.ndarray, what: str) -> None:
    """Only numbers and booleans survive the float32 copy and the JSON final observation."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{what}: dtype {array.dtype} is not supported (numbers or booleans only)")


def _float32_with_exact(array: np.ndarray, name: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """`array` as float32; keep the original as `NAME_exact` when float32 would change it."""
    as_float = array.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = np.array_equal(as_float.astype(array.dtype), array)
    if not exact:
        arrays[f"{name}_exact"] = array
    return as_float


def _episode_to_trajectory(
    episode: Any, episode_meta: Mapping[str, Any], kind: str, parts: tuple[str, ...], where: str
) -> Trajectory:
    """One Minari episode as a validated Trajectory, with what the export needs to rebuild it
    exactly (final observation, dtypes, shapes, exact copies) in its metadata and extras."""
    observations = episode.observations
    by_part = dict(observations) if kind == "dict" else {"features": observations}
    rewards = np.asarray(episode.rewards)
    steps = int(rewards.shape[0])
    actions = np.asarray(episode.actions)
    terminations = np.asarray(episode.terminations)
    truncations = np.asarray(episode.truncations)
    described: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    final: dict[str, Any] = {}
    for part in parts:
        values = np.asarray(by_part[part])
        _numeric(values, f"{where}: observation '{part}'")
        if values.shape[0] != steps + 1:
            raise DataError(
                f"{where}: observation '{part}' has {values.shape[0]} entries for {steps} steps; "
                "a Minari episode holds one more observation than steps"
            )
        described[part] = _describe(values)
        last = values[steps]
        if last.dtype.kind == "f" and not np.isfinite(last).all():
            raise DataError(
                f"{where}: the final observation holds NaN or infinite values; fix or drop "
                "this episode"
            )
        final[part] = last.tolist()
        per_step = values[:steps]
        if part == "features":
            per_step = per_step.reshape(steps, -1)
        arrays[part] = _float32_with_exact(per_step, part, arrays)
    for name, array in (
        ("actions", actions),
        ("rewards", rewards),
        ("terminations", terminations),
        ("truncations", truncations),
    ):
        _numeric(array, f"{where}: {name}")
        described[name] = _describe(array)
    arrays["actions"] = _imported_actions(actions, episode_meta, steps, arrays)
    arrays["rewards"] = _float32_with_exact(rewards.reshape(steps), "rewards", arrays)
    arrays["terminated"] = terminations.reshape(steps)
    arrays["truncated"] = truncations.reshape(steps)
    arrays["dones"] = arrays["terminated"].astype(bool) | arrays["truncated"].astype(bool)
    arrays["old_log_probs"] = np.zeros(steps, dtype=np.float32)
    arrays["value_preds"] = np.zeros(steps + 1, dtype=np.float32)
    metadata: dict[str, Any] = {
        **episode_meta,
        "minari_episode_id": int(episode.id),
        "observation_kind": kind,
        "minari_arrays": described,
        "final_observation": final,
    }
    if episode.infos:
        metadata["minari_infos_dropped"] = sorted(str(key) for key in episode.infos)
    trajectory = build_trajectory(arrays, metadata, source=where)
    trajectory.source = None
    return trajectory


def _action_metadata(space: Any, dataset_id: str) -> dict[str, Any]:
    """What each imported trajectory's metadata says about its actions (and the `start`
    offset removed from them), for a Discrete, Box, MultiDiscrete or MultiBinary space."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"action_dim": int(space.n), "action_start": int(space.start)}
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        width = int(np.prod(space.shape))
        low = tuple(float(v) for v in np.asarray(space.low, np.float64).reshape(-1))
        high = tuple(float(v) for v in np.asarray(space.high, np.float64).reshape(-1))
        box = ActionSpace(BOX, (width,), low=low, high=high)
        return {METADATA_KEY: box.as_dict()}
    if isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        nvec = [int(n) for n in space.nvec]
        declared = {"kind": MULTI_DISCRETE, "shape": [len(nvec)], "nvec": nvec}
        return {METADATA_KEY: declared, "action_start": [int(v) for v in space.start]}
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        width = int(space.shape[0])
        return {METADATA_KEY: {"kind": MULTI_BINARY, "shape": [width], "n": width}}
    raise DataError(
        f"Minari dataset {dataset_id} has action space {space}; Townlet imports Discrete, Box "
        "(float), one-dimensional MultiDiscrete and one-dimensional MultiBinary actions"
    )


def _imported_actions(
    actions: np.ndarray, episode_meta: Mapping[str, Any], steps: int, arrays: dict[str, np.ndarray]
) -> np.ndarray:
    """Minari's actions in Townlet's layout: ids (T,) or vectors (T, A), starting at 0."""
    declared = episode_meta.get(METADATA_KEY)
    kind = declared["kind"] if isinstance(declared, Mapping) else DISCRETE
    start = np.asarray(episode_meta.get("action_start", 0), dtype=np.int64)
    if kind == DISCRETE:
        return actions.reshape(steps).astype(np.int64) - start
    flat = actions.reshape(steps, -1)
    if kind == BOX:
        with np.errstate(invalid="ignore", over="ignore"):
            return _float32_with_exact(flat, "actions", arrays)  # non-finite: refused after
    return flat.astype(np.int64) - start


def import_minari(dataset_id: str, out: Path, *, data_path: Path | None = None) -> ImportSummary:
    """Write the local Minari dataset `dataset_id` to `out` as a Townlet dataset.

    Reads only what is on disk under `data_path` (default: Minari's own folder); raises
    DataError when the dataset is missing, unreadable or not discrete-action, and
    ConfigError when Minari is not installed.
    """
    api = _minari()
    _check_id(api, dataset_id)
    root = datasets_root(data_path)
    data_dir = root / dataset_id / "data"
    if not (data_dir / "metadata.json").is_file():
        raise DataError(
            f"Minari dataset {dataset_id} is not available locally (looked in "
            f"{root / dataset_id}); Townlet never downloads. On a connected machine run "
            f"`minari download {dataset_id}` and copy its folder under {root}, or pass "
            "--data-path to the folder that holds it"
        )
    try:
        source = api.minari_dataset(data_dir)
        raw_metadata = dict(api.read_raw_metadata(data_dir))
    except ImportError as exc:
        raise ConfigError(f"{MINARI_HINT} (reading {dataset_id}: {exc})") from exc
    except (ValueError, KeyError, OSError, AssertionError) as exc:
        raise DataError(
            f"{data_dir}: not a readable Minari dataset ({exc}); re-download or re-create it"
        ) from exc

    kind, parts = _observation_parts(source.observation_space, dataset_id)
    episode_meta = {
        "source": "minari",
        "minari_dataset_id": dataset_id,
        **_action_metadata(source.action_space, dataset_id),
    }
    minari_metadata = {k: v for k, v in raw_metadata.items() if k not in _SKIPPED_METADATA}
    writer = DatasetWriter(
        out,
        prefix="episode",
        metadata={
            "source": "minari",
            "dataset_id": dataset_id,
            "env_spec": raw_metadata.get("env_spec"),
            "minari": minari_metadata,
            "observation_kind": kind,
            "notes": (
                "imported from Minari: old_log_probs and value_preds are zeros (Minari records "
                "no policy outputs); each trajectory's final observation is in its metadata"
            ),
        },
    )
    transitions = 0
    for episode in source.iterate_episodes():
        stored: Mapping[str, Any] = next(
            iter(source.storage.get_episode_metadata([episode.id])), {}
        )
        meta = dict(episode_meta)
        if stored.get("seed") is not None:
            meta["seed"] = int(stored["seed"])
        where = f"Minari {dataset_id} episode {episode.id}"
        trajectory = _episode_to_trajectory(episode, meta, kind, parts, where)
        writer.add(trajectory)
        transitions += trajectory.timesteps
    writer.update_metadata(episodes=writer.count, transitions=transitions)
    return ImportSummary(
        dataset_id=dataset_id, out=out, episodes=writer.count, transitions=transitions
    )


# ---------------------------------------------------------------------------------- export


def _native_arrays(trajectory: Trajectory) -> dict[str, Any]:
    """`minari_arrays` for a trajectory Townlet wrote itself: its own dtypes and shapes."""
    described: dict[str, Any] = {
        "features": {"dtype": "float32", "shape": [int(trajectory.features.shape[1])]},
        "actions": {
            "dtype": str(trajectory.actions.dtype),
            "shape": [int(d) for d in trajectory.actions.shape[1:]],
        },
        "rewards": {"dtype": "float32", "shape": []},
        "terminations": {"dtype": "bool", "shape": []},
        "truncations": {"dtype": "bool", "shape": []},
    }
    if trajectory.map is not None:
        described["map"] = {"dtype": "float32", "shape": list(trajectory.map.shape[1:])}
    return described


def _layout(trajectory: Trajectory) -> tuple[str, dict[str, Any]]:
    """Observation kind and array descriptions: as imported, else Townlet's own."""
    described = trajectory.metadata.get("minari_arrays")
    kind = trajectory.metadata.get("observation_kind")
    if isinstance(described, Mapping) and kind in ("array", "dict"):
        return str(kind), dict(described)
    return ("dict" if trajectory.map is not None else "array"), _native_arrays(trajectory)


def _action_space(actions: ActionSpace) -> Any:
    """The Gymnasium space of a Townlet dataset's actions (unknown Box bounds: unbounded)."""
    from gymnasium import spaces

    if actions.kind == DISCRETE:
        return spaces.Discrete(actions.count)
    if actions.kind == BOX:
        unbounded = np.full(actions.shape, np.inf, np.float32)
        low = np.asarray(actions.low, np.float32) if actions.low is not None else -unbounded
        high = np.asarray(actions.high, np.float32) if actions.high is not None else unbounded
        return spaces.Box(low, high, shape=actions.shape, dtype=np.float32)
    if actions.kind == MULTI_DISCRETE:
        assert actions.nvec is not None
        return spaces.MultiDiscrete(list(actions.nvec))
    return spaces.MultiBinary(actions.width)


def _spaces(
    api: _Minari, minari_metadata: Mapping[str, Any], first: Trajectory, actions: ActionSpace | None
) -> tuple[Any, Any]:
    """The recorded Minari spaces when the data came from Minari, else unbounded Boxes and
    the dataset's own action space (`_action_space`) built from the data."""
    observation = minari_metadata.get("observation_space")
    action = minari_metadata.get("action_space")
    if isinstance(observation, str) and isinstance(action, str):
        return api.deserialize_space(observation), api.deserialize_space(action)
    from gymnasium import spaces

    kind, described = _layout(first)
    boxes: dict[str, spaces.Space[Any]] = {
        part: spaces.Box(
            -np.inf, np.inf, shape=tuple(described[part]["shape"]), dtype=described[part]["dtype"]
        )
        for part in _PARTS
        if part in described
    }
    observation_space = spaces.Dict(boxes) if kind == "dict" else boxes["features"]
    assert actions is not None
    return observation_space, _action_space(actions)


def _restore(values: np.ndarray, spec: Mapping[str, Any], steps: int, what: str) -> np.ndarray:
    shape = (steps, *(int(d) for d in spec["shape"]))
    if int(np.prod(shape)) != values.size:
        raise DataError(
            f"{what} holds {values.shape} but its metadata records per-step shape "
            f"{tuple(spec['shape'])}; fix or remove 'minari_arrays' in the sidecar"
        )
    return values.reshape(shape).astype(np.dtype(spec["dtype"]), copy=False)


def _one_per_step(trajectory: Trajectory, name: str, where: str) -> np.ndarray:
    values: np.ndarray = getattr(trajectory, name)
    if values.ndim == 2 and values.shape[1] != 1:
        raise DataError(
            f"{where}: '{name}' has {values.shape[1]} columns; a Minari episode holds one per "
            "step (export one agent's trajectories)"
        )
    return values.reshape(trajectory.timesteps)


def _observation_shapes(described: Mapping[str, Any]) -> dict[str, list[int]]:
    return {part: list(described[part]["shape"]) for part in _PARTS if part in described}


def _exported_actions(trajectory: Trajectory, action_start: np.ndarray) -> np.ndarray:
    """The actions as Minari stores them: the exact copy where one was kept, the `start`
    offset added back to integer values."""
    actions = trajectory.extras.get("actions_exact", trajectory.actions)
    if np.issubdtype(actions.dtype, np.floating):
        return actions
    shifted: np.ndarray = actions + action_start
    return shifted


def _action_start(metadata: Mapping[str, Any], where: str) -> np.ndarray:
    """The `start` offset an import removed: an integer, or one per action dimension."""
    value = metadata.get("action_start", 0)
    try:
        start = np.asarray(value, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{where}: metadata action_start must be an integer or a list of integers, found "
            f"{value!r}; fix or remove it"
        ) from exc
    if start.ndim > 1:
        raise DataError(f"{where}: metadata action_start {value!r} has more than one dimension")
    return start


def _episode_buffer(
    api: _Minari,
    trajectory: Trajectory,
    action_start: np.ndarray,
    expected: tuple[str, dict[str, list[int]]],
    where: str,
) -> tuple[Any, bool]:
    """The Minari episode for one trajectory, and whether its final observation was made up.

    `expected` is the first trajectory's observation kind and shapes: a Minari dataset has
    one observation space, so every episode must match it.
    """
    steps = trajectory.timesteps
    kind, described = _layout(trajectory)
    if (kind, _observation_shapes(described)) != expected:
        raise DataError(
            f"{where}: observations {kind} {_observation_shapes(described)} differ from the "
            f"first trajectory's {expected[0]} {expected[1]}; a Minari dataset has one "
            "observation space, so export trajectories of one shape"
        )
    final = trajectory.metadata.get("final_observation")
    final = final if isinstance(final, Mapping) else {}
    repeated = False
    observations: dict[str, np.ndarray] = {}
    for part in _PARTS:
        if part not in described:
            continue
        stored = trajectory.extras.get(f"{part}_exact", getattr(trajectory, part))
        if stored is None:
            raise DataError(f"{where}: metadata describes a '{part}' observation the sample lacks")
        spec = described[part]
        per_step = _restore(stored, spec, steps, f"{where}: '{part}'")
        if part in final:
            last = np.asarray(final[part], dtype=per_step.dtype).reshape(per_step.shape[1:])
        else:
            last, repeated = per_step[-1], True
        observations[part] = np.concatenate([per_step, last[None]])
    actions = _exported_actions(trajectory, action_start)
    rewards = trajectory.extras.get("rewards_exact", _one_per_step(trajectory, "rewards", where))
    terminated = trajectory.extras.get("terminated", _one_per_step(trajectory, "dones", where))
    truncated = trajectory.extras.get("truncated", np.zeros(steps, dtype=bool))
    seed = trajectory.metadata.get("seed")
    buffer = api.episode_buffer(
        seed=int(seed) if isinstance(seed, int) else None,
        observations=observations if kind == "dict" else observations["features"],
        actions=_restore(actions, described["actions"], steps, f"{where}: 'actions'"),
        rewards=_restore(rewards, described["rewards"], steps, f"{where}: 'rewards'"),
        terminations=_restore(
            terminated, described["terminations"], steps, f"{where}: 'terminated'"
        ),
        truncations=_restore(truncated, described["truncations"], steps, f"{where}: 'truncated'"),
    )
    return buffer, repeated


def _env_spec_json(env_id: str | None, recorded: Any) -> str | None:
    """`--env`'s registered spec (made from the registry, the environment is not built),
    else the spec recorded on import."""
    if env_id is None:
        return recorded if isinstance(recorded, str) else None
    import gymnasium

    try:
        spec = gymnasium.spec(env_id)
        text: str = spec.to_json()
    except gymnasium.error.Error as exc:
        raise ConfigError(
            f"--env {env_id}: not a registered Gymnasium environment ({exc}); install the "
            "package that registers it or leave --env out"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--env {env_id}: its spec cannot be saved as JSON ({exc})") from exc
    return text


def _author(value: Any) -> str | set[str] | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set)):
        return {str(v) for v in value}
    return None


def _create_empty(
    api: _Minari,
    dataset_id: str,
    data_path: Path | None,
    spaces_: tuple[Any, Any],
    minari_metadata: Mapping[str, Any],
) -> Any:
    """An empty Minari dataset with the given spaces, stored losslessly (HDF5, no JPEG)."""
    with _minari_root(data_path), warnings.catch_warnings():
        # Minari warns about every field left None; the ones we know are passed or set later.
        warnings.filterwarnings("ignore", message=r"`\w+` is set to None", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"env_spec is None", category=UserWarning)
        return api.create_dataset_from_buffers(
            dataset_id,
            [],
            env=None,  # a spec is recorded afterwards, so the environment is never built
            observation_space=spaces_[0],
            action_space=spaces_[1],
            algorithm_name=minari_metadata.get("algorithm_name"),
            author=_author(minari_metadata.get("author")),
            author_email=_author(minari_metadata.get("author_email")),
            code_permalink=minari_metadata.get("code_permalink"),
            description=minari_metadata.get("description"),
            requirements=minari_metadata.get("requirements"),
            data_format="hdf5",
            jpeg_encoding=False,  # JPEG would change image observations
        )


def _write_episodes(
    api: _Minari, storage: Any, dataset: ReplayDataset, first: Trajectory
) -> tuple[int, int, int]:
    """Append every trajectory as one episode; returns (episodes, transitions, repeated)."""
    action_start = _action_start(first.metadata, str(dataset.entries[0].sample))
    first_kind, first_described = _layout(first)
    expected = (first_kind, _observation_shapes(first_described))
    episodes = transitions = repeated = 0
    for index, trajectory in enumerate(dataset.trajectories()):
        where = str(dataset.entries[index].sample)
        buffer, made_up = _episode_buffer(api, trajectory, action_start, expected, where)
        storage.update_episodes([buffer])
        if made_up:
            storage.update_episode_metadata(
                [{"townlet_final_observation": "repeated_last"}], [episodes]
            )
            repeated += 1
        episodes += 1
        transitions += trajectory.timesteps
    return episodes, transitions, repeated


def _closing_metadata(
    minari_metadata: Mapping[str, Any],
    env_spec: str | None,
    dataset: ReplayDataset,
    episodes: int,
    repeated: int,
) -> dict[str, Any]:
    """What Minari's constructor does not take: the env spec, evaluation settings, and a
    record of the export (with the repeated-final-observation note when there is one)."""
    extra: dict[str, Any] = {
        key: minari_metadata[key] for key in _RESTORED_METADATA if key in minari_metadata
    }
    if env_spec is not None:
        extra["env_spec"] = env_spec
    record: dict[str, Any] = {"source": str(dataset.source.path), "episodes": episodes}
    if repeated:
        record["final_observation_repeated"] = repeated
        base = minari_metadata.get("description") or (
            f"Exported from the Townlet dataset {dataset.label}."
        )
        extra["description"] = (
            f"{base} {repeated} of {episodes} episodes had no stored final observation; their "
            "last observation is repeated as the final one (episode metadata "
            "townlet_final_observation = repeated_last)."
        )
    extra["townlet_export"] = record
    return extra


def export_minari(
    source: Path | str,
    dataset_id: str,
    *,
    data_path: Path | None = None,
    env_id: str | None = None,
) -> ExportSummary:
    """Create the local Minari dataset `dataset_id` from the Townlet dataset at `source`.

    Reads one trajectory at a time. Refuses an id that already exists; on any failure the
    half-written Minari dataset is removed. `env_id` names the Gymnasium environment to
    record (default: the one recorded when the data was imported from Minari, if any).
    """
    api = _minari()
    _check_id(api, dataset_id)
    location = datasets_root(data_path) / dataset_id
    if location.exists():
        raise DataError(
            f"Minari dataset {dataset_id} already exists at {location}; choose a new id (for "
            f"example bump the -vN version) or delete it first with `minari delete {dataset_id}`"
        )
    dataset = ReplayDataset(source, streaming=True)
    recorded = dataset.source.metadata.get("minari")
    minari_metadata = dict(recorded) if isinstance(recorded, Mapping) else {}
    first = dataset.trajectory(0)
    # Without a recorded action space, a pre-pass finds it (every trajectory read once,
    # the action rules checked): it is fixed before writing.
    actions = None if "action_space" in minari_metadata else dataset.action_space
    spaces_ = _spaces(api, minari_metadata, first, actions)
    env_spec = _env_spec_json(env_id, minari_metadata.get("env_spec"))
    try:
        storage = _create_empty(api, dataset_id, data_path, spaces_, minari_metadata).storage
        episodes, transitions, repeated = _write_episodes(api, storage, dataset, first)
        storage.update_metadata(
            _closing_metadata(minari_metadata, env_spec, dataset, episodes, repeated)
        )
    except BaseException as exc:
        # The id was checked absent above, so whatever is there now is this call's doing.
        shutil.rmtree(location, ignore_errors=True)
        if isinstance(exc, ImportError):  # h5py or Pillow (Minari's storage) missing
            raise ConfigError(f"{MINARI_HINT} (writing {dataset_id}: {exc})") from exc
        raise
    return ExportSummary(
        dataset_id=dataset_id,
        location=location,
        episodes=episodes,
        transitions=transitions,
        repeated_final_observations=repeated,
    )
