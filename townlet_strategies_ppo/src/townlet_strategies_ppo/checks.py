"""`prepare`: what PPO checks before anything is written (torch-free).

Everything that would otherwise fail after the run directory exists, or never, is refused
here by name: a device that is not on this machine, an environment id nobody registered, a
start checkpoint that is missing, does not fit the environment, or contradicts the network
the config sets, and sizes whose memory cannot exist on this machine.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
from pathlib import Path

from townlet_core import TrainingContext
from townlet_core.checkpoints import (
    CheckpointInfo,
    NetworkSpec,
    ObservationSpec,
    check_compatible,
    read_info,
)
from townlet_core.data.action_space import BOX, DISCRETE, MULTI_DISCRETE, ActionSpace
from townlet_core.data.validation import require_valid_dataset
from townlet_core.envs.settings import EnvSettingsError
from townlet_core.envs.spaces import MASKABLE_KINDS
from townlet_core.errors import ConfigError, DataError
from townlet_strategies_ppo import env_spaces
from townlet_strategies_ppo.config import PPOConfig

#: Why a run with a BC term and nothing to start from is refused.
NO_REFERENCE = (
    "ppo.bc_weight: the BC term keeps the policy close to the one the run starts from, but "
    "this run starts from a fresh network; set ppo.init_checkpoint (e.g. a BC run's "
    "checkpoint), or remove ppo.bc_weight"
)

#: float32 values.
VALUE_BYTES = 4
#: Per transition besides the observation and the action: reward, flags and validity in the
#: rollout buffers, and log-prob, value, advantage and return in the flattened batch.
SCALAR_BYTES_PER_STEP = 56
#: Per action number per transition (an int64 id or float32 value), in the buffers and batch.
ACTION_BYTES = 16
#: Each parameter is held as weights, gradients and Adam's two moments.
PARAMETER_COPIES = 4
GIB = 2**30


def prepare(context: TrainingContext, config: PPOConfig) -> None:
    """Fail before anything is written when the environment, the data or a start
    checkpoint is unusable, or the run's memory cannot fit this machine (the device was
    checked before, for every torch strategy: `execution.check_device`)."""
    _check_ranks(context, config)
    starts = _start_checkpoints(context, config)
    if config.bc_weight > 0 and not starts and not context.warm_start_pending:
        raise ConfigError(NO_REFERENCE)
    if not context.resume:
        _check_network_matches(config, starts)
        _check_settings_match(config, starts)
    if config.dataset is not None:
        # the same checks as `townlet dataset validate`: nothing it rejects reaches training
        summary = require_valid_dataset(config.dataset)
        if summary.action_kind != DISCRETE:
            raise ConfigError(
                f"ppo.dataset {config.dataset}: holds {summary.actions.describe()} actions; "
                "PPO's replay mode trains discrete action ids (train other spaces live, "
                "with ppo.env)"
            )
        map_shape = summary.map_shape
        replay = ObservationSpec(
            features_dim=summary.features_dim,
            map_shape=(map_shape[0], map_shape[1], map_shape[2]) if map_shape else None,
        )
        for path, info in starts:
            check_compatible(path, info, replay, summary.action_dim)
    else:
        observation, actions = _environment_spaces(config)
        if config.action_mapping != "clip" and actions.kind != BOX:
            raise ConfigError(
                f"ppo.action_mapping: {config.action_mapping} maps continuous (Box) actions, "
                f"but environment '{config.env}' acts in {actions.describe()}; remove "
                "ppo.action_mapping"
            )
        check_memory(config, observation, actions, physical_memory())
        for path, info in starts:
            check_compatible(path, info, observation, actions.count, actions)


def _check_ranks(context: TrainingContext, config: PPOConfig) -> None:
    """Across ranks (`--nproc`) the environments are shared out evenly (`ranks.py`), and
    only live rollouts are split: a replay run trains in one process."""
    size = context.world.size
    if size == 1:
        return
    if config.dataset is not None:
        raise ConfigError(
            f"ppo.dataset: replay training runs in one process; drop --nproc {size} (or train "
            "live, with ppo.env)"
        )
    if config.num_envs % size:
        raise ConfigError(
            f"ppo.num_envs={config.num_envs} cannot be shared out evenly over {size} ranks; "
            f"use a multiple of {size} (each rank steps num_envs / {size} environments)"
        )
    if config.minibatch_size < size:
        raise ConfigError(
            f"ppo.minibatch_size={config.minibatch_size} is below the {size} ranks; each "
            "rank trains on minibatch_size / ranks rows, so use at least one per rank"
        )


def _start_checkpoints(
    context: TrainingContext, config: PPOConfig
) -> list[tuple[Path, CheckpointInfo]]:
    """The descriptions of the checkpoints the run starts from; a missing or unreadable
    `ppo.init_checkpoint` is named as the setting it is."""
    starts: list[tuple[Path, CheckpointInfo]] = []
    if config.init_checkpoint is not None:
        try:
            starts.append((config.init_checkpoint, read_info(config.init_checkpoint)))
        except DataError as exc:
            raise DataError(
                f"ppo.init_checkpoint: {exc}; set it to a checkpoint folder a run wrote "
                "(e.g. RUN_DIR/checkpoint), or remove it to start from a fresh network"
            ) from exc
    if context.warm_start is not None:
        starts.append((context.warm_start, read_info(context.warm_start)))
    return starts


def _check_network_matches(config: PPOConfig, starts: list[tuple[Path, CheckpointInfo]]) -> None:
    """A run started from `ppo.init_checkpoint` keeps the checkpoint's network: network
    fields the user set explicitly to something else would be silently ignored, so refuse."""
    if config.init_checkpoint is None or "network" not in config.model_fields_set:
        return
    path, info = starts[0]
    differing = [
        f"ppo.network.{name} is {_shown(getattr(config.network, name))} but the checkpoint's "
        f"is {_shown(getattr(info.network, name))}"
        for name in NetworkSpec.model_fields
        if name in config.network.model_fields_set
        and getattr(config.network, name) != getattr(info.network, name)
    ]
    if differing:
        raise ConfigError(
            f"ppo.init_checkpoint {path}: {'; '.join(differing)}. A warm start keeps the "
            "checkpoint's network; remove those ppo.network settings (or set them to the "
            "checkpoint's), or remove ppo.init_checkpoint to train a new network"
        )


def _check_settings_match(config: PPOConfig, starts: list[tuple[Path, CheckpointInfo]]) -> None:
    """A warm start keeps the checkpoint's action mapping and observation normalisation
    (its statistics are in the weights): a config that sets either to something else
    explicitly would be silently overruled, so refuse it, as a differing network field."""
    differing: list[str] = []
    for path, info in starts:
        if "action_mapping" in config.model_fields_set and (
            config.action_mapping != info.action_mapping
        ):
            differing.append(
                f"{path}: ppo.action_mapping is {config.action_mapping!r} but the checkpoint's "
                f"policy was trained with {info.action_mapping!r}"
            )
        normalised = info.network.normalize_observations
        if _sets_normalisation(config) and config.network_spec().normalize_observations != (
            normalised
        ):
            differing.append(
                f"{path}: ppo.normalize_observations is "
                f"{config.network_spec().normalize_observations} but the checkpoint's network "
                f"{'normalises' if normalised else 'does not normalise'} its observations"
            )
    if differing:
        raise ConfigError(
            f"{'; '.join(differing)}. A warm start keeps the checkpoint's policy; remove those "
            "settings (or set them to the checkpoint's), or start without the checkpoint"
        )


def _sets_normalisation(config: PPOConfig) -> bool:
    return "normalize_observations" in config.model_fields_set or (
        "normalize_observations" in config.network.model_fields_set
    )


def _shown(value: object) -> str:
    return str(list(value)) if isinstance(value, tuple) else repr(value)


def _environment_spaces(config: PPOConfig) -> tuple[ObservationSpec, ActionSpace]:
    """The environment's observation (without the mask key) and action space, with its
    kwargs and wrappers applied (so a wrapper that cannot be imported or built, or kwargs
    the env refuses, are named as the setting they are); an unknown id is named with the
    registered ids closest to it, and an action space PPO cannot train by its kind."""
    import gymnasium

    from townlet_core.envs.make import make_vector_env

    env_id = config.env
    from townlet_core.envs.agents import PARALLEL_ENVS

    if ":" not in env_id and env_id not in gymnasium.registry and env_id not in PARALLEL_ENVS:
        close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"ppo.env: unknown environment '{env_id}'{hint} (use a registered Gymnasium id, "
            "or module:Class to import an environment of your own)"
        )
    field = "ppo.env with ppo.wrappers" if config.wrappers else "ppo.env"
    try:
        env, _how = make_vector_env(config.env_settings(), 1)
    except EnvSettingsError as exc:
        raise exc.at("ppo.") from exc
    except ConfigError as exc:
        raise ConfigError(f"{field}: {exc}") from exc
    try:
        _check_agent_rows(config, int(env.num_envs))
        actions = env_spaces.action_space(env.single_action_space, env_id, config.action_mask_key)
        observation = env_spaces.observation_spec(
            env.single_observation_space, env_id, config.action_mask_key
        )
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("ppo.") else f"{field}: {message}") from exc
    finally:
        env.close()
    return observation, actions


def _check_agent_rows(config: PPOConfig, per_world: int) -> None:
    """A multi-agent env (one world built: `per_world` rows) steps whole worlds, so
    num_envs (agents, a row each) must be a multiple of its agents (per rank: the trainer
    checks each rank's share when it builds its envs)."""
    if per_world > 1 and config.num_envs % per_world:
        raise ConfigError(
            f"ppo.num_envs={config.num_envs}: {config.env} has {per_world} agents a world and "
            f"num_envs counts agents (a row each); use a multiple of {per_world}"
        )


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def rollout_bytes(config: PPOConfig, observation: ObservationSpec, actions: ActionSpace) -> int:
    """The rollout buffers (one observation row more than the rollout) and the flattened
    batch an update trains on."""
    values = observation.features_dim + math.prod(observation.map_shape or (0,))
    steps = config.num_envs * config.num_steps
    observed = steps + config.num_envs
    # a mask, where there can be one: a byte per entry, in the buffers and the batch
    mask = _head_outputs(actions) if actions.kind in MASKABLE_KINDS else 0
    per_step = SCALAR_BYTES_PER_STEP + actions.width * ACTION_BYTES + 2 * mask
    return (observed + steps) * values * VALUE_BYTES + steps * per_step


def _head_outputs(actions: ActionSpace) -> int:
    """Outputs of the policy head: a logit per action or choice, a mean per dimension."""
    if actions.kind == MULTI_DISCRETE and actions.nvec is not None:
        return sum(actions.nvec)
    return actions.count


def network_parameters(
    spec: NetworkSpec, observation: ObservationSpec, actions: ActionSpace
) -> int:
    """Parameters of the actor-critic `townlet_core.nn.build_network` builds from `spec`."""
    width = observation.features_dim
    encoder = 0
    if observation.map_shape is not None:
        encoder = (math.prod(observation.map_shape) + 1 + width + 1) * spec.encoder_hidden
        width = 2 * spec.encoder_hidden
    sizes = [width, *(max(size, 0) for size in spec.hidden_sizes)]
    stack = sum((inputs + 1) * outputs for inputs, outputs in itertools.pairwise(sizes))
    stacks = 1 if spec.shared_trunk else 2
    outputs = _head_outputs(actions)
    heads = (sizes[-1] + 1) * (outputs + 1)
    log_std = outputs if actions.kind == BOX else 0
    return encoder + stacks * stack + heads + log_std


def check_memory(
    config: PPOConfig,
    observation: ObservationSpec,
    actions: ActionSpace,
    available: int | None,
) -> None:
    """Refuse sizes whose memory is more than this machine has at all (`available` bytes;
    None: unknown, not checked), naming the settings to lower."""
    if available is None:
        return
    rollout = rollout_bytes(config, observation, actions)
    parameters = network_parameters(config.network, observation, actions)
    network = parameters * VALUE_BYTES * PARAMETER_COPIES
    total = rollout + network
    if total <= available:
        return
    values = observation.features_dim + math.prod(observation.map_shape or (0,))
    parts = []
    if 2 * rollout >= total:
        parts.append(
            f"rollout buffers {rollout / GIB:,.1f} GiB (num_envs {config.num_envs:,} x "
            f"num_steps {config.num_steps:,} x {values:,} observation values): lower "
            "ppo.num_envs or ppo.num_steps"
        )
    if 2 * network >= total:
        parts.append(
            f"network {network / GIB:,.1f} GiB ({parameters:,} parameters with their "
            "gradients and optimiser state): lower ppo.network.hidden_sizes"
        )
    raise ConfigError(
        f"ppo: this run needs about {total / GIB:,.1f} GiB of memory, more than this machine "
        f"has ({available / GIB:,.1f} GiB): {'; '.join(parts)}"
    )
