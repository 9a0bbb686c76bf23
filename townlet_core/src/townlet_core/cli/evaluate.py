"""`townlet evaluate CHECKPOINT`: how well a trained policy does in an environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from townlet_core.cli._common import vector_option

if TYPE_CHECKING:
    from townlet_core.envs.settings import VectorMode


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--env",
    "env_id",
    metavar="ID",
    help="Gymnasium id or module:Class (default: the checkpoint's, if it is a registered "
    "Gymnasium id; an import string recorded in a checkpoint runs only when passed here).",
)
@click.option(
    "--env-kwargs",
    metavar="JSON",
    help="Keyword arguments to gymnasium.make or the class, as a JSON object (as trained with).",
)
@click.option(
    "--wrapper",
    "wrappers",
    multiple=True,
    metavar="SPEC",
    help="Wrap each sub-env (repeat, in order, as trained with): module:Class, or JSON "
    '\'{"wrapper": "module:Class", "kwargs": {...}}\'. Never taken from the checkpoint.',
)
@click.option("--episodes", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the episodes."
)
@click.option(
    "--stochastic", is_flag=True, help="Sample actions instead of taking the most likely."
)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--max-episode-steps", type=click.IntRange(min=1), help="Cut episodes at this length."
)
@click.option(
    "--action-mask-key",
    metavar="KEY",
    help="Read each step's action mask from this observation key; default: "
    "info['action_mask'] when the environment gives one.",
)
@vector_option("episodes")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def evaluate(
    checkpoint: Path,
    env_id: str | None,
    env_kwargs: str | None,
    wrappers: tuple[str, ...],
    episodes: int,
    seed: int,
    stochastic: bool,
    device: str,
    max_episode_steps: int | None,
    action_mask_key: str | None,
    vector: VectorMode,
    as_json: bool,
) -> None:
    """Run CHECKPOINT (a checkpoint folder, e.g. RUN_DIR/checkpoint) for N episodes and
    report the mean, std, min and max of return and episode length. Greedy by default.

    Pass --env-kwargs and --wrapper as the policy was trained with (a config's env_kwargs
    and wrappers); they are never read from the checkpoint, which only names them. The
    checkpoint's action space (Discrete, Box, MultiDiscrete, MultiBinary) must be the
    environment's; masks, where the environment gives them, restrict its actions."""
    from townlet_core.checkpoints import (
        ObservationSpec,
        check_compatible,
        read_info,
        recorded_env_id,
    )
    from townlet_core.envs.evaluation import environment_spaces, evaluate_policy
    from townlet_core.envs.settings import (
        CLI_OPTIONS,
        EnvSettingsError,
        recorded_hint,
        settings_from_options,
    )
    from townlet_core.errors import DataError
    from townlet_core.runtime.torch_guard import require_torch

    info = read_info(checkpoint)
    # An id from the checkpoint is data (registered ids only); code runs only from --env,
    # and wrappers only from --wrapper: a checkpoint's recorded settings are shown, not used.
    env_id = env_id or recorded_env_id(checkpoint, info)
    settings = settings_from_options(env_id, env_kwargs, wrappers, max_episode_steps)
    try:
        spaces = environment_spaces(settings, action_mask_key=action_mask_key)
    except EnvSettingsError as exc:
        raise exc.renamed(CLI_OPTIONS) from exc
    try:
        check_compatible(
            checkpoint,
            info,
            ObservationSpec.from_layout(spaces.layout),
            spaces.action_count,
            action_space=spaces.action_space,
        )
    except DataError as exc:
        hint = recorded_hint(info.extra, settings)
        if not hint:
            raise
        raise DataError(f"{exc}{hint}") from exc
    require_torch("townlet evaluate", "bc")
    from townlet_core.nn import TorchPolicy, device_name, select_device

    torch_device, _described = select_device(device)
    policy = TorchPolicy.from_checkpoint(
        checkpoint, device=device_name(torch_device), greedy=not stochastic, seed=seed
    )
    result = evaluate_policy(
        settings,
        policy,
        episodes=episodes,
        seed=seed,
        action_mask_key=action_mask_key,
        vector=vector,
    )
    if as_json:
        payload = {
            "checkpoint": str(checkpoint),
            "greedy": not stochastic,
            "device": device_name(torch_device),
            **result.as_dict(),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    mode = "stochastic" if stochastic else "greedy"
    click.echo(f"{env_id}, {result.episodes} episodes ({mode}, seed {seed}):")
    click.echo(
        f"  return: mean {result.mean_return:.2f}, std {result.std_return:.2f}, "
        f"min {result.min_return:.2f}, max {result.max_return:.2f}"
    )
    click.echo(
        f"  length: mean {result.mean_length:.1f}, std {result.std_length:.1f}, "
        f"min {result.min_length}, max {result.max_length}"
    )
