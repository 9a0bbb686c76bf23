"""`prepare`: what behaviour cloning checks before anything is written (torch-free).

It runs before the run directory exists (`townlet_core.runtime.execution`), so everything a
run could be refused for is refused here: no demonstrations, a dataset that `townlet dataset
validate` rejects (the same check, `require_valid_dataset`), an evaluation environment whose
spaces do not fit the data, and an unreadable or ill-fitting warm start.
"""

from __future__ import annotations

from townlet_core import ConfigError, TrainingContext
from townlet_core.checkpoints import ObservationSpec, check_compatible, read_info
from townlet_core.data.validation import DatasetSummary, require_valid_dataset
from townlet_core.envs.evaluation import environment_spaces
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
        if config.eval_env is not None and config.eval_env != config.capture.env:
            _check_envs_agree(config.capture, config.eval_env)
        if context.warm_start is not None:
            read_info(context.warm_start)  # raises DataError naming what is wrong with it
        return
    summary = require_valid_dataset(config.dataset, strict_paths=config.strict_paths)
    if config.eval_env is not None:
        check_environment_fits(summary, config.eval_env)
    if context.warm_start is not None:
        observation = ObservationSpec(
            features_dim=summary.features_dim,
            map_shape=_map_shape(summary.map_shape),
        )
        check_compatible(
            context.warm_start, read_info(context.warm_start), observation, summary.action_dim
        )


def check_environment_fits(summary: DatasetSummary, env_id: str) -> None:
    """A DataError naming both sides when a policy cloned from `summary`'s data cannot act
    in `env_id` (observation width, map shape or number of actions differ)."""
    layout, action_count = environment_spaces(env_id)
    problems = summary.environment_mismatches(
        layout["features"][0], layout.get("map"), action_count
    )
    if problems:
        raise DataError(
            f"{summary.path}: bc.eval_env '{env_id}' does not fit the dataset "
            f"({'; '.join(problems)}); evaluate on the environment the demonstrations come "
            "from, or leave bc.eval_env unset"
        )


def _check_envs_agree(capture: CaptureSpec, eval_env: str) -> None:
    """Captured demonstrations have the capture environment's spaces; `eval_env` must have
    the same."""
    capture_env = capture.env
    captured, captured_actions = environment_spaces(capture_env, capture.max_episode_steps)
    evaluated, evaluated_actions = environment_spaces(eval_env)
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
