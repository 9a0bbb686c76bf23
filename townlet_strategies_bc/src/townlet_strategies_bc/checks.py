"""`prepare`: what behaviour cloning checks before anything is written (torch-free).

It runs before the run directory exists (`townlet_core.runtime.execution`), so everything a
run could be refused for is refused here: no demonstrations, a dataset that `townlet dataset
validate` rejects (the same check, `require_valid_dataset`), a capture or evaluation
environment that cannot be built as configured (its kwargs, its wrappers), an evaluation
environment whose spaces do not fit the data, and an unreadable or ill-fitting warm start.
"""

from __future__ import annotations

from townlet_core import ConfigError, TrainingContext
from townlet_core.checkpoints import ObservationSpec, check_compatible, read_info
from townlet_core.data.validation import DatasetSummary, require_valid_dataset
from townlet_core.envs.evaluation import environment_spaces
from townlet_core.envs.settings import EnvSettings, EnvSettingsError
from townlet_core.errors import DataError
from townlet_strategies_bc.config import BCConfig, CaptureSpec

NO_DATA = (
    "behaviour cloning needs demonstrations: set bc.dataset=PATH (a manifest, capture folder "
    "or .npz sample), or bc.capture.env=CartPole-v1 to record them from the built-in expert "
    "first (e.g. townlet train --strategy bc --set bc.capture.env=CartPole-v1)"
)


def prepare(context: TrainingContext, config: BCConfig) -> None:
    """Fail early when there is nothing to learn from, the data is not valid, the evaluation
    environment does not fit it, or the warm start is unreadable or does not fit it."""
    if config.dataset is None and config.capture is None:
        raise ConfigError(NO_DATA)
    if config.dataset is None:
        assert config.capture is not None
        captured = _spaces(config.capture.env_settings(), "bc.capture.")
        _check_expert_fits(config.capture)
        evaluated = config.eval_env_settings()
        if evaluated is not None and evaluated != config.capture.env_settings().spaces_key():
            _check_envs_agree(config.capture, evaluated, captured)
        if context.warm_start is not None:
            read_info(context.warm_start)  # raises DataError naming what is wrong with it
        return
    summary = require_valid_dataset(config.dataset, strict_paths=config.strict_paths)
    evaluated = config.eval_env_settings()
    if evaluated is not None:
        check_environment_fits(summary, evaluated)
    if context.warm_start is not None:
        observation = ObservationSpec(
            features_dim=summary.features_dim,
            map_shape=_map_shape(summary.map_shape),
        )
        check_compatible(
            context.warm_start, read_info(context.warm_start), observation, summary.action_dim
        )


def check_environment_fits(summary: DatasetSummary, env: str | EnvSettings) -> None:
    """A DataError naming both sides when a policy cloned from `summary`'s data cannot act
    in `env` (observation width, map shape or number of actions differ, with bc.eval_env's
    kwargs and wrappers applied)."""
    settings = EnvSettings.of(env)
    env_id = settings.id
    layout, action_count = _spaces(settings, "bc.eval_")
    problems = summary.environment_mismatches(
        layout["features"][0], layout.get("map"), action_count
    )
    if problems:
        raise DataError(
            f"{summary.path}: bc.eval_env '{env_id}' does not fit the dataset "
            f"({'; '.join(problems)}); evaluate on the environment the demonstrations come "
            "from, or leave bc.eval_env unset"
        )


def _spaces(settings: EnvSettings, prefix: str) -> tuple[dict[str, tuple[int, ...]], int]:
    """The env's spaces; a setting that cannot be used is named under `prefix`
    (`bc.capture.wrappers[0]`, `bc.eval_env_kwargs`)."""
    try:
        return environment_spaces(settings)
    except EnvSettingsError as exc:
        raise exc.at(prefix) from exc


def _check_expert_fits(capture: CaptureSpec) -> None:
    """The scripted expert reads its env's raw observations; wrappers that change them
    would make it act on the wrong numbers after the run directory exists."""
    if capture.policy != "scripted" or not capture.wrappers:
        return
    from townlet_core.envs.capture import check_expert_observations
    from townlet_core.envs.make import make_vector_env

    env, _how = make_vector_env(capture.env_settings(), 1)
    try:
        check_expert_observations(env, capture.env_settings())
    except ConfigError as exc:
        raise ConfigError(f"bc.capture.policy: {exc}") from exc
    finally:
        env.close()


def _check_envs_agree(
    capture: CaptureSpec,
    evaluated_env: EnvSettings,
    captured_spaces: tuple[dict[str, tuple[int, ...]], int],
) -> None:
    """Captured demonstrations have the capture environment's spaces (kwargs and wrappers
    applied); the evaluation environment must have the same."""
    capture_env, eval_env = capture.env, evaluated_env.id
    captured, captured_actions = captured_spaces
    evaluated, evaluated_actions = _spaces(evaluated_env, "bc.eval_")
    if captured != evaluated or captured_actions != evaluated_actions:
        raise ConfigError(
            f"bc.eval_env '{eval_env}' does not fit bc.capture.env '{capture_env}' "
            f"(observations {evaluated} vs {captured}, actions {evaluated_actions} vs "
            f"{captured_actions}); evaluate on the environment the demonstrations come from"
        )


def _map_shape(shape: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    channels, height, width = shape
    return channels, height, width
