"""`townlet config migrate OLD.yaml`: an original Townlet training config in today's format.

The converted config goes to stdout (or `-o`, written atomically); one line per note goes
to stderr. The conversion itself is `townlet_core.migration.migrate` (pure, torch-free);
this module reads, checks the result the way `townlet train -c` would, and writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from townlet_core.cli._common import make_registry

if TYPE_CHECKING:
    from pydantic import BaseModel

    from townlet_core.migration import MigrationResult

OUTPUT_SUFFIXES = (".yaml", ".yml", ".json")
MODES = ("replay", "rollout", "mixed", "bc", "anneal")


@click.group()
def config() -> None:
    """Work with config files: convert original Townlet configs (migrate)."""


@config.command("migrate")
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the converted config here (.yaml, .yml or .json) instead of stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
@click.option(
    "--mode",
    type=click.Choice(MODES, case_sensitive=False),
    help="The original's --mode: wins over training.source, as it did there.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (config, notes, output, checked) on stdout instead.",
)
@click.pass_context
def migrate_command(
    ctx: click.Context,
    old: Path,
    output: Path | None,
    force: bool,
    mode: str | None,
    as_json: bool,
) -> None:
    """Convert OLD, an original Townlet training config, into today's format.

    Prints the converted config and, on stderr, what was renamed, dropped, changed in
    meaning or filled with the original's default (docs/migrating.md lists every field).
    What cannot be converted is refused with the field and the reason (exit 2).
    """
    from townlet_core.errors import ConfigError
    from townlet_core.migration import migrate
    from townlet_core.runtime.config import load_config_file

    if output is not None:
        if output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ConfigError(
                f"-o {output}: write the converted config as {', '.join(OUTPUT_SUFFIXES)} "
                "(TOML is read, not written)"
            )
        if output.exists() and not force:
            raise ConfigError(
                f"-o {output}: the file already exists; pass --force to overwrite it, or "
                "choose another name"
            )
    result = migrate(load_config_file(old), mode=mode, source=str(old))
    checked = check_converted(ctx, result, old)
    if output is not None:
        from townlet_core.atomic import atomic_write_text

        atomic_write_text(output, render(result, old, as_json=output.suffix.lower() == ".json"))
    if as_json:
        report: dict[str, Any] = {
            "strategy": result.strategy,
            "config": result.config,
            "notes": [note.as_dict() for note in result.notes],
            "output": str(output) if output is not None else None,
            "checked": checked,
        }
        click.echo(json.dumps(report, indent=2))
        return
    if output is None:
        click.echo(render(result, old, as_json=False), nl=False)
    for note in result.notes:
        click.echo(str(note), err=True)
    counts = dict.fromkeys(("renamed", "changed", "defaulted", "dropped"), 0)
    for note in result.notes:
        counts[note.kind] += 1
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    where = f" into {output}" if output is not None else ""
    click.echo(
        f"townlet: converted {old}{where} for strategy '{result.strategy}': {summary} "
        "(see docs/migrating.md)",
        err=True,
    )


def render(result: MigrationResult, old: Path, *, as_json: bool) -> str:
    """The converted config as a file's text: YAML with a header comment, or JSON."""
    if as_json:
        return json.dumps(result.config, indent=2) + "\n"
    import yaml

    header = (
        f"# Converted from {old} by `townlet config migrate`; run: townlet train -c FILE\n"
        "# (what was renamed, dropped or changed: the command's notes, docs/migrating.md)\n"
    )
    return header + yaml.safe_dump(result.config, sort_keys=False)


def check_converted(ctx: click.Context, result: MigrationResult, old: Path) -> bool:
    """Validate the converted config as `townlet train -c` does (each section by its
    strategy's model). False, with a stderr line, when the strategy is not installed."""
    from townlet_core.errors import (
        ConfigError,
        PluginLoadError,
        StrategyConflictError,
        TownletError,
        UnknownStrategyError,
    )
    from townlet_core.runtime.config import build_run_config

    registry = make_registry(ctx, quiet_warnings=True)
    try:
        specs = registry.resolve_with_requirements(result.strategy)
        models = {spec.name: registry.config_model(spec.name) for spec in specs}
    except (UnknownStrategyError, PluginLoadError, StrategyConflictError) as exc:
        print(f"townlet: converted, but not checked: {exc}", file=sys.stderr)
        return False

    def section_model(name: str) -> type[BaseModel] | None:  # as Orchestrator does
        return registry.config_model(name) if name in registry.available() else None

    try:
        build_run_config(
            result.strategy, models, data=result.config, optional_section=section_model
        )
    except TownletError as exc:
        raise ConfigError(
            f"{old}: the converted config does not validate (a bug in townlet config "
            f"migrate; please report it with the original config): {exc}"
        ) from exc
    return True
