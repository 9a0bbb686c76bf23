"""The checkpoint format, torch-free: what `checkpoint.json` holds and how to check it.

A checkpoint is a folder:

    checkpoint.json       this description (network spec, spaces, producer, metrics, hashes)
    weights.safetensors   the policy network's weights
    state.pt              optional training state (optimiser, schedules, RNG) for resuming

The description is enough to rebuild the network and to tell whether a checkpoint fits an
environment or dataset before any weights are read, so any strategy can warm-start from any
other's checkpoint and a mismatch is explained field by field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from townlet_core.data.action_space import DISCRETE, ActionSpace, size_problem, space_from_dict
from townlet_core.errors import ConfigError, DataError

INFO_FILE = "checkpoint.json"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"
FORMAT: Literal["townlet-checkpoint"] = "townlet-checkpoint"
FORMAT_VERSION = 2
#: Version 2 added `action_space`, `action_mapping` and the network's normalisation and
#: `log_std_init`; a checkpoint using none of them is still written as version 1, so a
#: discrete policy stays readable by a townlet-core that predates them.
FIRST_FORMAT_VERSION = 1

#: The widest layer a `NetworkSpec` may declare, and the most hidden layers. Far above any
#: network these strategies train (64 to 256 wide), low enough that a typo or an edited
#: checkpoint cannot ask for a layer of 200,000 (160 GB) before anything else is checked.
MAX_LAYER_WIDTH = 65_536
MAX_HIDDEN_LAYERS = 64

LayerWidth = Annotated[int, Field(ge=1, le=MAX_LAYER_WIDTH)]


class NetworkSpec(BaseModel):
    """The policy network's shape: small, serialisable, shared by BC and PPO.

    Validated the same way in a config (`ppo.network`, `bc.network`) and in a checkpoint's
    description: a width of 0 would train a network that ignores its input, a negative one
    cannot be built. No hidden layers at all (`[]`) is a linear policy, which works.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_sizes: tuple[LayerWidth, ...] = Field(
        (64, 64),
        max_length=MAX_HIDDEN_LAYERS,
        description="Widths of the hidden layers of the actor and of the critic (each "
        f"1..{MAX_LAYER_WIDTH}, at most {MAX_HIDDEN_LAYERS} layers; [] gives a linear policy).",
    )
    activation: Literal["tanh", "relu"] = Field("tanh", description="Hidden-layer activation.")
    encoder_hidden: int = Field(
        256,
        ge=1,
        le=MAX_LAYER_WIDTH,
        description="Width of each branch (map, features) of the encoder for observations "
        "with a map; unused for flat observations.",
    )
    shared_trunk: bool = Field(
        False,
        description="One hidden stack for actor and critic (as the original Townlet network) "
        "instead of two separate ones.",
    )
    normalize_observations: bool = Field(
        False,
        description="Normalise the features by their running mean and variance (kept in the "
        "weights file, updated while training, frozen for evaluation and capture).",
    )
    log_std_init: float = Field(
        0.0,
        ge=-20.0,
        le=2.0,
        description="Initial log standard deviation of a continuous (Box) policy; unused for "
        "other action spaces.",
    )
    map_encoder: Literal["flatten", "cnn"] = Field(
        "flatten",
        description="How the map or image is encoded: flattened into one layer (the original "
        "Townlet network) or by a convolutional network (cnn_* below).",
    )
    cnn_channels: tuple[LayerWidth, ...] = Field(
        (32, 64, 64),
        min_length=1,
        max_length=8,
        description="Output channels of each convolution (Nature DQN: 32, 64, 64).",
    )
    cnn_kernels: tuple[Annotated[int, Field(ge=1, le=64)], ...] = Field(
        (8, 4, 3), min_length=1, max_length=8, description="Kernel size of each convolution."
    )
    cnn_strides: tuple[Annotated[int, Field(ge=1, le=64)], ...] = Field(
        (4, 2, 1), min_length=1, max_length=8, description="Stride of each convolution."
    )

    @model_validator(mode="after")
    def _one_size_per_convolution(self) -> NetworkSpec:
        lengths = {len(self.cnn_channels), len(self.cnn_kernels), len(self.cnn_strides)}
        if len(lengths) != 1:
            raise ValueError(
                "cnn_channels, cnn_kernels and cnn_strides need one entry per convolution, "
                f"got {list(self.cnn_channels)}, {list(self.cnn_kernels)}, "
                f"{list(self.cnn_strides)}"
            )
        return self

    def uses_version_2(self) -> bool:
        """Whether describing this network needs checkpoint format version 2."""
        return (
            self.normalize_observations or self.log_std_init != 0.0 or self.map_encoder != "flatten"
        )


class ObservationSpec(BaseModel):
    """What the network reads: a flat feature vector, and optionally a (C, H, W) map (an
    image alone has no features: `features_dim` 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features_dim: int = Field(ge=0)
    map_shape: tuple[int, int, int] | None = None
    feature_names: list[str] | None = None

    @model_validator(mode="after")
    def _reads_something(self) -> ObservationSpec:
        if self.features_dim == 0 and self.map_shape is None:
            raise ValueError("an observation needs features (features_dim >= 1) or a map")
        return self

    @classmethod
    def from_layout(cls, layout: Mapping[str, tuple[int, ...]]) -> ObservationSpec:
        """The spec of a recorded observation layout (`features`, optional `map`), as
        `townlet_core.envs.make.observation_layout` gives it for an environment."""
        map_shape = layout.get("map")
        return cls(
            features_dim=layout["features"][0],
            map_shape=(map_shape[0], map_shape[1], map_shape[2]) if map_shape else None,
        )


class Producer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    strategy_version: str
    townlet_core: str
    torch: str | None = None


class CheckpointInfo(BaseModel):
    """Contents of `checkpoint.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["townlet-checkpoint"] = FORMAT
    format_version: int = Field(FORMAT_VERSION, ge=1)
    network: NetworkSpec
    observation: ObservationSpec
    action_dim: int = Field(ge=1)
    #: The action space (`ActionSpace.as_dict`); absent means Discrete(action_dim), which
    #: is what every checkpoint before version 2 holds.
    action_space: dict[str, Any] | None = None
    #: How a sampled Box action reaches the env (see `townlet_core.envs.spaces`).
    action_mapping: Literal["clip", "squash"] = "clip"
    action_lookup: dict[str, int] | None = None
    env_id: str | None = None
    producer: Producer
    seed: int
    metrics: dict[str, float | None] = Field(default_factory=dict)
    created_at: str
    weights_sha256: str
    parameters: int = Field(ge=0)
    has_training_state: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("action_space")
    @classmethod
    def _valid_space(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                space = space_from_dict(value)
            except DataError as exc:
                raise ValueError(str(exc)) from exc
            problem = size_problem(space)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _space_fits_dim(self) -> CheckpointInfo:
        if self.action_space is not None and self.space().count != self.action_dim:
            raise ValueError(
                f"action_dim {self.action_dim} does not fit action_space {self.action_space}"
            )
        return self

    def space(self) -> ActionSpace:
        """The action space this policy acts in."""
        if self.action_space is None:
            return ActionSpace(DISCRETE, (), n=self.action_dim)
        return space_from_dict(self.action_space)


def checkpoint_dir(path: Path | str) -> Path:
    """The checkpoint folder for a path to the folder or to its `checkpoint.json`."""
    path = Path(path)
    return path.parent if path.name == INFO_FILE else path


def read_info(path: Path | str) -> CheckpointInfo:
    """Read and validate `checkpoint.json`; errors name the file and what is wrong."""
    folder = checkpoint_dir(path)
    info_path = folder / INFO_FILE
    if not folder.exists():
        raise DataError(f"{folder}: no such checkpoint")
    if not info_path.exists():
        raise DataError(
            f"{folder}: not a Townlet checkpoint (no {INFO_FILE}); pass the checkpoint folder "
            "a training run wrote, e.g. RUN_DIR/checkpoint"
        )
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{info_path}: unreadable checkpoint description ({exc})") from exc
    _check_version(info_path, data)
    try:
        return CheckpointInfo.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise DataError(f"{info_path}: invalid checkpoint description: {problems}") from exc


def _check_version(info_path: Path, data: object) -> None:
    """Refuse a description that is no JSON object, or whose `format_version` is no integer
    (pydantic would turn "1" into 1) or newer than this core reads, before validating it."""
    invalid = f"{info_path}: invalid checkpoint description"
    if not isinstance(data, dict):
        raise DataError(f"{invalid}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DataError(
            f"{invalid}: format_version must be an integer (this townlet-core reads versions "
            f"{FIRST_FORMAT_VERSION} to {FORMAT_VERSION}), got {json.dumps(version)}"
        )
    if version > FORMAT_VERSION:
        raise DataError(
            f"{info_path}: checkpoint format version {version} is newer than this "
            f"townlet-core reads ({FORMAT_VERSION}); upgrade townlet-core"
        )


def recorded_env_id(path: Path | str, info: CheckpointInfo) -> str:
    """The environment a checkpoint was trained on, when running it runs no code the file
    names: a description is data, so only an id already in Gymnasium's registry is taken
    from it. An import string (`module:Class`, `module:Env-v0`) would import and call
    whatever the file says; it runs only when the user passes it with --env.
    """
    folder = checkpoint_dir(path)
    env_id = info.env_id
    if env_id is None:
        raise ConfigError(f"{folder}: the checkpoint records no environment; pass --env ID")
    if ":" in env_id:
        raise ConfigError(
            f"checkpoint {folder} was trained on '{env_id}'; pass --env {env_id} to run that code"
        )
    import gymnasium  # its own registry only: Gymnasium 1.x loads no plugin modules

    from townlet_core.envs.agents import PARALLEL_ENVS  # built-in names, not import strings

    if env_id not in gymnasium.registry and env_id not in PARALLEL_ENVS:
        raise ConfigError(
            f"checkpoint {folder} was trained on '{env_id}', which is not a registered "
            f"Gymnasium id here; install the package that registers it and pass --env "
            f"MODULE:{env_id} (MODULE registers the id when imported), or --env ID"
        )
    return env_id


def mismatches(
    info: CheckpointInfo,
    observation: ObservationSpec,
    action_dim: int,
    action_space: ActionSpace | None = None,
) -> list[str]:
    """How a checkpoint differs from the observations and actions it is asked to serve
    (`action_space`, when given, is compared by kind and shape, and nvec; Box bounds may
    differ, since actions are clipped or squashed into the env's own)."""
    problems = []
    expected = info.observation
    if expected.features_dim != observation.features_dim:
        problems.append(
            f"features: checkpoint reads {expected.features_dim}, the data has "
            f"{observation.features_dim}"
        )
    if expected.map_shape != observation.map_shape:
        problems.append(
            f"map: checkpoint reads {expected.map_shape or 'no map'}, the data has "
            f"{observation.map_shape or 'no map'}"
        )
    recorded = info.space()
    if action_space is not None and (
        recorded.kind != action_space.kind
        or recorded.shape != action_space.shape
        or (recorded.nvec is not None and recorded.nvec != action_space.nvec)
    ):
        problems.append(
            f"actions: checkpoint acts in {recorded.describe()}, the data has "
            f"{action_space.describe()}"
        )
    elif info.action_dim != action_dim:
        problems.append(f"actions: checkpoint has {info.action_dim}, the data needs {action_dim}")
    if (
        expected.feature_names
        and observation.feature_names
        and expected.feature_names != observation.feature_names
    ):
        differing = [
            f"{i}: {a!r} vs {b!r}"
            for i, (a, b) in enumerate(
                zip(expected.feature_names, observation.feature_names, strict=False)
            )
            if a != b
        ][:3]
        problems.append(f"feature names differ ({'; '.join(differing)})")
    return problems


def check_compatible(
    path: Path | str,
    info: CheckpointInfo,
    observation: ObservationSpec,
    action_dim: int,
    action_space: ActionSpace | None = None,
) -> None:
    """Raise DataError listing every difference if the checkpoint cannot serve this data."""
    problems = mismatches(info, observation, action_dim, action_space)
    if problems:
        raise DataError(
            f"{checkpoint_dir(path)}: checkpoint does not fit ({'; '.join(problems)}); use a "
            "checkpoint trained on the same observation and action spaces"
        )
