"""`townlet dataset inspect|validate`: look at data before training on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.group()
def dataset() -> None:
    """Inspect and validate datasets (manifests, capture folders or single .npz samples)."""


STRICT_PATHS_HELP = (
    "Look for a manifest's relative entries beside the manifest only (by default an entry "
    "not found there is looked for in the working directory, with a warning)."
)


@dataset.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--strict-paths", is_flag=True, help=STRICT_PATHS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_command(path: Path, strict_paths: bool, as_json: bool) -> None:
    """Summarise PATH: trajectories, transitions, shapes and dtypes, actions, rewards,
    baseline metrics, and which rule found each listed file."""
    from townlet_core.data.report import inspect_dataset

    summary = inspect_dataset(path, strict_paths=strict_paths)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"dataset {summary['label']} ({summary['path']})")
    skipped = summary["skipped_not_accepted"]
    click.echo(
        f"  trajectories: {summary['trajectories']}"
        + (f" ({skipped} more marked accepted: false, skipped)" if skipped else "")
    )
    click.echo(f"  transitions:  {summary['transitions']}")
    click.echo(f"  action_dim:   {summary['action_dim']}")
    click.echo(f"  action_space: {_space_text(summary['action_space'])}")
    click.echo("  arrays:")
    for name, shapes in summary["arrays"].items():
        click.echo(f"    {name:<14} {', '.join(shapes)}")
    click.echo("  actions:")
    _echo_actions(summary["action_space"]["kind"], summary["actions"])
    for key in ("rewards_per_step", "returns_per_trajectory", "lengths"):
        click.echo(f"  {key.replace('_', ' ')}: {_stats(summary[key])}")
    click.echo("  baseline metrics:")
    for key, value in summary["baseline_metrics"].items():
        click.echo(f"    {key}: {value:.6g}")


def _space_text(space: dict[str, Any]) -> str:
    """`townlet_core.data.action_space.ActionSpace.describe` of the JSON form."""
    from townlet_core.data.action_space import space_from_dict

    return space_from_dict(space).describe()


def _echo_actions(kind: str, actions: dict[str, Any]) -> None:
    """Discrete: one histogram line per id; vectors: one line (or histogram) per dimension."""
    if kind == "discrete":
        _echo_histogram(actions, "    ")
        return
    for dim, info in actions.items():
        if kind == "box":
            click.echo(f"    dimension {dim}: {_stats(info)}")
        else:
            click.echo(f"    dimension {dim}:")
            _echo_histogram(info, "      ")


def _echo_histogram(counts: dict[str, Any], indent: str) -> None:
    for action, info in counts.items():
        click.echo(f"{indent}{action:>4}: {info['count']:>8} ({info['share']:.1%})")


def _stats(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.6g}" for k, v in values.items())


@dataset.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--schema",
    metavar="NAME",
    help="Also check a named domain schema (townlet: conflict features present).",
)
@click.option("--strict-paths", is_flag=True, help=STRICT_PATHS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def validate_command(
    ctx: click.Context, path: Path, schema: str | None, strict_paths: bool, as_json: bool
) -> None:
    """Check every sample of PATH; list each problem with its file. Exit 1 if any.

    Training runs the same check before it starts and refuses what this rejects."""
    from townlet_core.data.report import validate_dataset

    report = validate_dataset(path, schema, strict_paths=strict_paths)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        click.echo(
            f"ok: {report.trajectories} trajectories, {report.transitions} transitions"
            + (f", schema '{schema}' satisfied" if schema else "")
        )
    else:
        for problem in report.problems:
            click.echo(f"{problem['file']}: {problem['problem']}")
        click.echo(f"{len(report.problems)} problem(s) in {path}", err=True)
    ctx.exit(0 if report.ok else 1)


@dataset.command("import-minari")
@click.argument("dataset_id")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the Townlet dataset into (must not hold one already).",
)
@click.option(
    "--data-path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Minari's dataset folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets).",
)
def import_minari_command(dataset_id: str, out: Path, data_path: Path | None) -> None:
    """Convert the local Minari dataset DATASET_ID (e.g. D4RL/door/human-v2) into a Townlet
    dataset, one trajectory per episode. Never downloads; needs the `minari` extra."""
    from townlet_core.data.minari_io import import_minari

    summary = import_minari(dataset_id, out, data_path=data_path)
    click.echo(
        f"imported {summary.episodes} episodes ({summary.transitions} transitions) from Minari "
        f"{summary.dataset_id} into {summary.out}"
    )


@dataset.command("export-minari")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("dataset_id")
@click.option(
    "--data-path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Minari's dataset folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets).",
)
@click.option(
    "--env",
    "env_id",
    metavar="ID",
    help="Gymnasium environment id to record (default: the one recorded on import, if any).",
)
def export_minari_command(
    path: Path, dataset_id: str, data_path: Path | None, env_id: str | None
) -> None:
    """Write the Townlet dataset at PATH as a new local Minari dataset DATASET_ID
    (refuses an existing id). Needs the `minari` extra."""
    from townlet_core.data.minari_io import export_minari

    summary = export_minari(path, dataset_id, data_path=data_path, env_id=env_id)
    repeated = summary.repeated_final_observations
    click.echo(
        f"exported {summary.episodes} episodes ({summary.transitions} transitions) to Minari "
        f"{summary.dataset_id} at {summary.location}"
        + (f" ({repeated} with the last observation repeated as the final one)" if repeated else "")
    )
