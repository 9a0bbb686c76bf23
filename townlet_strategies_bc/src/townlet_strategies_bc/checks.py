"""`prepare`: what behaviour cloning checks before anything is written (torch-free).

It runs before the run directory exists (`townlet_core.runtime.execution`), so everything a
run could be refused for is refused here: no demonstrations, a dataset that `townlet dataset
validate` rejects (the same check, `require_valid_dataset`), a capture or evaluation
environment that cannot be built as configured (its kwargs, its wrappers), an evaluation
environment whose spaces do not fit the data, an unreadable or ill-fitting warm start, and
settings that cannot apply to the data's action space (an accuracy gate for Box actions,
observation normalisation asked of a warm start trained without it).
"""

from __future__ import annotations

from townlet_core import ConfigError, TrainingContext
from townlet_core.checkpoints import CheckpointInfo, ObservationSpec, check_compatible, read_info
from townlet_core.data.action_space import BOX, KINDS, ActionSpace
from townlet_core.data.validation import DatasetSummary, require_valid_dataset
from townlet_core.envs.settings import EnvSettings, EnvSettingsError
from townlet_core.errors import DataError
from townlet_strategies_bc.config import BCConfig, CaptureSpec

NO_DATA = (
    "behaviour cloning needs demonstrations: set bc.dataset=PATH (a manifest, capture folder "
    "or .npz sample), or bc.capture.env=CartPole-v1 to record them from the built-in expert "
    "first (e.g. townlet train --strategy bc --set bc.capture.env=CartPole-v1)"
)


#: `bc.capture.policy` naming the checkpoint the run starts from.
WARM_START_POLICY = "warm_start"
NO_WARM_START = (
    "bc.capture.policy: warm_start acts with the checkpoint the run starts from, and this run "
    "starts from none; policy: warm_start needs a warm start, e.g. a bc stage after another "
    "stage in an anneal schedule, or name a checkpoint path, scripted or random instead"
)


def capture_policy(context: TrainingContext, capture: CaptureSpec) -> str:
    """The acting policy's spec for the capture run: `warm_start` becomes the path of the
    checkpoint the run starts from (a ConfigError when there is none)."""
    if capture.policy != WARM_START_POLICY:
        return capture.policy
    if context.warm_start is None:
        raise ConfigError(NO_WARM_START)
    return str(context.warm_start)


def _check_warm_start_policy(context: TrainingContext, capture: CaptureSpec) -> None:
    """`policy: warm_start` needs a warm start: one given now, or one a composing strategy
    will hand in at run time (anneal checking a later stage, `warm_start_pending`)."""
    none_coming = context.warm_start is None and not context.warm_start_pending
    if capture.policy == WARM_START_POLICY and none_coming:
        raise ConfigError(NO_WARM_START)


def prepare(context: TrainingContext, config: BCConfig) -> None:
    """Fail early when there is nothing to learn from, the data is not valid, the evaluation
    environment does not fit it, or the warm start is unreadable or does not fit it."""
    if config.dataset is None and config.capture is None:
        raise ConfigError(NO_DATA)
    if config.dataset is None:
        assert config.capture is not None
        captured = _spaces(config.capture.env_settings(), "bc.capture.")
        _check_warm_start_policy(context, config.capture)
        _check_expert_fits(config.capture)
        _check_settings_fit(config, captured[1], f"bc.capture.env '{config.capture.env}'")
        evaluated = config.eval_env_settings()
        if evaluated is not None and evaluated != config.capture.env_settings().spaces_key():
            _check_envs_agree(config.capture, evaluated, captured)
        if context.warm_start is not None:
            _check_warm_start_normalises(config, read_info(context.warm_start))
        return
    summary = require_valid_dataset(
        config.dataset, strict_paths=config.strict_paths, action_kinds=KINDS
    )
    _check_settings_fit(config, summary.actions, str(summary.path))
    evaluated = config.eval_env_settings()
    if evaluated is not None:
        check_environment_fits(summary, evaluated)
    if context.warm_start is not None:
        observation = ObservationSpec(
            features_dim=summary.features_dim,
            map_shape=_map_shape(summary.map_shape),
        )
        info = read_info(context.warm_start)
        check_compatible(context.warm_start, info, observation, summary.action_dim, summary.actions)
        _check_warm_start_normalises(config, info)


def check_environment_fits(summary: DatasetSummary, env: str | EnvSettings) -> None:
    """A DataError naming both sides when a policy cloned from `summary`'s data cannot act
    in `env` (observation width, map shape or number of actions differ, with bc.eval_env's
    kwargs and wrappers applied)."""
    settings = EnvSettings.of(env)
    env_id = settings.id
    layout, space = _spaces(settings, "bc.eval_")
    problems = summary.environment_mismatches(
        layout["features"][0], layout.get("map"), space.count, space
    )
    if problems:
        raise DataError(
            f"{summary.path}: bc.eval_env '{env_id}' does not fit the dataset "
            f"({'; '.join(problems)}); evaluate on the environment the demonstrations come "
            "from, or leave bc.eval_env unset"
        )


Spaces = tuple[dict[str, tuple[int, ...]], ActionSpace]


def _spaces(settings: EnvSettings, prefix: str) -> Spaces:
    """The env's observation layout and action space (any kind BC clones); a setting that
    cannot be used is named under `prefix` (`bc.capture.wrappers[0]`, `bc.eval_env_kwargs`).
    Building the env here is what makes a bad setting fail before anything is written."""
    from townlet_core.envs.make import make_vector_env, observation_layout
    from townlet_core.envs.spaces import action_space_of

    try:
        env, _how = make_vector_env(settings, 1)
    except EnvSettingsError as exc:
        raise exc.at(prefix) from exc
    try:
        return (
            observation_layout(env.single_observation_space, settings.id),
            action_space_of(env.single_action_space, settings.id),
        )
    finally:
        env.close()


def _check_settings_fit(config: BCConfig, space: ActionSpace, where: str) -> None:
    """Box actions have no accuracy to gate on (their metric is action_mse)."""
    if space.kind == BOX and config.accept_val_accuracy is not None:
        raise ConfigError(
            f"bc.accept_val_accuracy: {where} has {space.describe()}, and continuous actions "
            "have no accuracy (bc reports action_mse for them); leave bc.accept_val_accuracy "
            "unset"
        )


def _check_warm_start_normalises(config: BCConfig, info: CheckpointInfo) -> None:
    """A warm start keeps its own network; normalisation cannot be added to weights that
    were trained on raw observations."""
    if config.network_spec().normalize_observations and not info.network.normalize_observations:
        raise ConfigError(
            "bc.normalize_observations: the warm start was trained on raw observations (its "
            "network has no observation statistics), and its weights would not fit normalised "
            "ones; turn bc.normalize_observations off for this warm start, or start fresh"
        )


def _check_expert_fits(capture: CaptureSpec) -> None:
    """The scripted expert reads its env's raw observations; wrappers that change them
    would make it act (or label) on the wrong numbers after the run directory exists."""
    if "scripted" not in (capture.policy, capture.labels) or not capture.wrappers:
        return
    field = "policy" if capture.policy == "scripted" else "labels"
    from townlet_core.envs.capture import check_expert_observations
    from townlet_core.envs.make import make_vector_env

    env, _how = make_vector_env(capture.env_settings(), 1)
    try:
        check_expert_observations(env, capture.env_settings())
    except ConfigError as exc:
        raise ConfigError(f"bc.capture.{field}: {exc}") from exc
    finally:
        env.close()


def _check_envs_agree(
    capture: CaptureSpec, evaluated_env: EnvSettings, captured_spaces: Spaces
) -> None:
    """Captured demonstrations have the capture environment's spaces (kwargs and wrappers
    applied); the evaluation environment must have the same."""
    capture_env, eval_env = capture.env, evaluated_env.id
    captured, captured_actions = captured_spaces
    evaluated, evaluated_actions = _spaces(evaluated_env, "bc.eval_")
    if captured != evaluated or _action_layout(captured_actions) != _action_layout(
        evaluated_actions
    ):
        raise ConfigError(
            f"bc.eval_env '{eval_env}' does not fit bc.capture.env '{capture_env}' "
            f"(observations {evaluated} vs {captured}, actions {_actions_text(evaluated_actions)} "
            f"vs {_actions_text(captured_actions)}); evaluate on the environment the "
            "demonstrations come from"
        )


def _action_layout(space: ActionSpace) -> tuple[object, ...]:
    """What a policy's head depends on (Box bounds are not: actions are clipped into them)."""
    return space.kind, space.shape, space.count, space.nvec


def _actions_text(space: ActionSpace) -> str:
    """Discrete as a bare count (as this message has always said), others described."""
    return str(space.n) if space.kind == "discrete" else space.describe()


def _map_shape(shape: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    channels, height, width = shape
    return channels, height, width
