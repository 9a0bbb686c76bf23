"""`townlet capture`: record trajectories from a Gymnasium environment into a dataset folder.

Only click is imported here; NumPy and Gymnasium load when the command runs, so
`townlet capture --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from townlet_core.cli._common import vector_option

if TYPE_CHECKING:
    from townlet_core.envs.capture import CaptureSummary
    from townlet_core.envs.settings import VectorMode


@click.command()
@click.option(
    "--env",
    "env_id",
    required=True,
    metavar="ID",
    help="Gymnasium id (e.g. CartPole-v1) or an entry point module:Class.",
)
@click.option(
    "--env-kwargs",
    metavar="JSON",
    help="Keyword arguments to gymnasium.make or the class, as a JSON object, e.g. "
    "'{\"sutton_barto_reward\": true}'.",
)
@click.option(
    "--wrapper",
    "wrappers",
    multiple=True,
    metavar="SPEC",
    help="Wrap each sub-env (repeat, applied in order): module:Class, or JSON "
    '\'{"wrapper": "gymnasium.wrappers:FrameStackObservation", "kwargs": {"stack_size": 4}}\'.',
)
@click.option(
    "--policy",
    default="scripted",
    show_default=True,
    metavar="POLICY",
    help="scripted (the built-in expert), random, module:factory or a checkpoint PATH.",
)
@click.option(
    "--labels",
    metavar="POLICY",
    help="Record this policy's actions for the states --policy visits (DAgger-style "
    "relabelling), e.g. scripted; default: --policy's own actions.",
)
@click.option("--episodes", type=click.IntRange(min=1), help="Capture this many episodes.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    help="Capture this many transitions in all (running episodes are cut, marked truncated).",
)
@click.option(
    "--num-envs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Environments stepped together.",
)
@vector_option("data")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for resets and policy.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder (must not already hold a dataset).",
)
@click.option(
    "--max-episode-steps",
    type=click.IntRange(min=1),
    help="Truncate episodes after this many steps (default: the environment's own limit).",
)
@click.option(
    "--action-mask-key",
    metavar="KEY",
    help="Read each step's action mask from this observation key (not recorded as a "
    "feature); default: info['action_mask'] when the environment gives one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display or status lines.")
def capture(
    env_id: str,
    env_kwargs: str | None,
    wrappers: tuple[str, ...],
    policy: str,
    labels: str | None,
    episodes: int | None,
    steps: int | None,
    num_envs: int,
    vector: VectorMode,
    seed: int,
    out: Path,
    max_episode_steps: int | None,
    action_mask_key: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run a policy in a Gymnasium environment and write each episode as a Townlet sample
    (.npz + .json) into OUT, with a manifest.json that is valid after every episode.

    Give exactly one budget: --episodes N or --steps N. The same --seed and --num-envs
    give identical data. --env-kwargs and --wrapper build the environment as a training
    config's env_kwargs and wrappers do; the manifest records them (as data). Discrete,
    Box (clipped into its bounds), MultiDiscrete and MultiBinary actions are recorded;
    action masks, where the environment gives them, are recorded as `action_masks`.
    --labels relabels: --policy acts, the labeller's actions are recorded.
    """
    if (episodes is None) == (steps is None):
        raise click.UsageError("give exactly one of --episodes N or --steps N")
    from townlet_core.envs.capture import capture as run_capture
    from townlet_core.envs.settings import CLI_OPTIONS, EnvSettingsError, settings_from_options
    from townlet_core.errors import RunInterruptedError
    from townlet_core.runtime.progress import Progress, progress_wanted

    settings = settings_from_options(env_id, env_kwargs, wrappers, max_episode_steps)
    progress = Progress(
        episodes or steps,
        f"capture {env_id}",
        enabled=progress_wanted(quiet),
        unit="episode" if episodes is not None else "step",
    )
    try:
        with progress:
            summary = run_capture(
                settings,
                policy,
                episodes=episodes,
                steps=steps,
                num_envs=num_envs,
                seed=seed,
                out=out,
                progress=progress,
                action_mask_key=action_mask_key,
                labeller=labels,
                vector=vector,
            )
    except EnvSettingsError as exc:
        raise exc.renamed(CLI_OPTIONS) from exc
    except KeyboardInterrupt:
        raise RunInterruptedError(
            f"interrupted; {out} keeps the {_written(out)} complete trajectories written so far"
        ) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(format_summary(summary))


def _written(out: Path) -> int:
    """How many trajectories the (possibly interrupted) capture's manifest lists."""
    from townlet_core.data.manifest import MANIFEST_NAME

    try:
        document = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    samples = document.get("samples") if isinstance(document, dict) else None
    return len(samples) if isinstance(samples, list) else 0


def format_summary(summary: CaptureSummary) -> str:
    """Counts, return and length statistics and where the dataset is."""
    data = summary.to_dict()
    returns, lengths = data["return"], data["length"]
    lines = [
        f"captured {summary.num_trajectories} trajectories ({summary.transitions} transitions) "
        f"from {summary.env_id} in {summary.seconds:.1f}s "
        f"({summary.transitions_per_second:,.0f} transitions/s, {summary.vectorization})",
    ]
    if summary.num_trajectories:
        lines.append(
            f"  return: mean {returns['mean']:.4g}, min {returns['min']:.4g}, "
            f"max {returns['max']:.4g}"
        )
        lines.append(
            f"  length: mean {lengths['mean']:.4g}, min {lengths['min']:.0f}, "
            f"max {lengths['max']:.0f}"
        )
    if summary.labeller is not None:
        lines.append(f"  actions labelled by {summary.labeller} ({summary.policy} acted)")
    if summary.action_blocked_ratio is not None:
        lines.append(f"  action_blocked_ratio: {summary.action_blocked_ratio:.4g}")
    if summary.path is not None:
        lines.append(f"  dataset: {summary.path}")
    return "\n".join(lines)
