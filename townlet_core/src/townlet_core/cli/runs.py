"""`townlet runs list|show|compare`: find the runs under a runs root, read one, compare some.

Reading only: the logic is `townlet_core.runtime.runs_index`; this module parses options and
prints. Imports stay inside the commands so `townlet runs --help` is light.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from townlet_core.cli._common import print_table

if TYPE_CHECKING:
    from townlet_core.runtime.runs_index import (
        ComparedRow,
        Comparison,
        RunDetails,
        RunSummary,
    )

#: A cell of a side-by-side table is cut to this many characters (--json has it all).
CELL_WIDTH = 48

runs_root_option = click.option(
    "--runs-root",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="The folder holding the runs: the runs_root setting of 'townlet train' "
    "(--set runs_root=DIR). Default: runs",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def runs() -> None:
    """Find, inspect and compare runs (reads their JSON files only; runs nothing)."""


@runs.command("list")
@click.option("-s", "--strategy", metavar="NAME", help="Only runs of this strategy.")
@click.option(
    "--status",
    metavar="STATE",
    help="Only runs in this state: running, stopped, succeeded, failed, error, interrupted "
    "or unreadable.",
)
@click.option(
    "--verdict", metavar="VERDICT", help="Only anneal runs with this verdict: PASS, HOLD or FAIL."
)
@runs_root_option
@json_option
def list_command(
    strategy: str | None,
    status: str | None,
    verdict: str | None,
    runs_root: Path | None,
    as_json: bool,
) -> None:
    """Every run under the runs root, newest first: name, strategy, state, verdict (anneal),
    seed, final greedy return, duration and start time (UTC). A run whose files cannot be
    read is listed as unreadable, with the reason."""
    from townlet_core.runtime import runs_index

    _check_choice("--status", status, runs_index.STATES)
    _check_choice("--verdict", verdict, runs_index.VERDICTS)
    root = runs_root or runs_index.default_runs_root()
    every = runs_index.list_runs(root)
    shown = runs_index.filter_runs(every, strategy=strategy, state=status, verdict=verdict)
    if as_json:
        click.echo(runs_index.to_json(shown))
    elif shown:
        _print_list(shown)
    else:
        click.echo(_nothing_matched(root, every, strategy))


def _check_choice(option: str, value: str | None, choices: Sequence[str]) -> None:
    from townlet_core._suggest import did_you_mean

    if value is not None and value.lower() not in {choice.lower() for choice in choices}:
        raise click.BadParameter(
            f"{value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}",
            param_hint=option,
        )


def _nothing_matched(root: Path, every: Sequence[RunSummary], strategy: str | None) -> str:
    from townlet_core._suggest import did_you_mean

    if not every:
        return f"no runs under {root}"
    strategies = sorted({run.strategy for run in every if run.strategy})
    hint = did_you_mean(strategy, strategies) if strategy and strategy not in strategies else ""
    return f"none of the {len(every)} runs under {root} match{hint}"


def _print_list(shown: Sequence[RunSummary]) -> None:
    print_table(
        ["NAME", "STRATEGY", "STATE", "VERDICT", "SEED", "RETURN", "DURATION", "STARTED (UTC)"],
        [
            [
                run.name,
                run.strategy or "-",
                run.state,
                run.verdict or "-",
                "-" if run.seed is None else str(run.seed),
                _return(run.final_return),
                _duration(run.duration_sec),
                _when(run.started_at),
            ]
            for run in shown
        ],
    )
    unreadable = [run for run in shown if run.state == "unreadable"]
    if unreadable:
        click.echo("")
        for run in unreadable:
            click.echo(f"{run.name}: unreadable: {run.reason}")


@runs.command("show")
@click.argument("run")
@runs_root_option
@json_option
def show_command(run: str, runs_root: Path | None, as_json: bool) -> None:
    """One run in full: state, config, versions, result, stages (anneal) and its files.
    RUN is a run's name under the runs root (or the start of one) or a path to a run."""
    from townlet_core.runtime import runs_index

    root = runs_root or runs_index.default_runs_root()
    details = runs_index.read_run(runs_index.resolve_run(run, root))
    if as_json:
        click.echo(runs_index.to_json(details))
    else:
        _print_details(details)


def _print_details(details: RunDetails) -> None:
    from townlet_core.runtime.runs_index import flatten

    summary = details.summary
    click.echo(f"{summary.name}  ({summary.path})")
    provider = details.strategies.get(summary.strategy or "", {})
    by = f" ({provider.get('distribution')} {provider.get('version')})" if provider else ""
    facts = [
        ("strategy", f"{summary.strategy or '-'}{by}"),
        ("state", summary.state),
        ("reason", summary.reason),
        ("verdict", summary.verdict),
        ("seed", None if summary.seed is None else str(summary.seed)),
        ("device", details.device),
        ("started", _when(summary.started_at, "", " UTC")),
        ("finished", _when(summary.finished_at, "", " UTC")),
        ("duration", _duration(summary.duration_sec)),
        ("return", _return_with_field(summary)),
        ("command", shlex.join(map(str, details.command)) if details.command else None),
        ("config from", _source(details)),
    ]
    _pairs([(f"{name}:", value) for name, value in facts if value])
    _section("versions", [[k, _cell(v, None)] for k, v in details.versions.items()])
    _section("config", [[k, _cell(v, None)] for k, v in flatten(details.config or {}).items()])
    result = {k: v for k, v in (details.result or {}).items() if k not in ("stages", "artifacts")}
    _section("result", [[k, _cell(v, None)] for k, v in flatten(result).items()])
    _section(
        "stages",
        [
            [
                stage.stage_dir.rsplit("/", 1)[-1],
                stage.strategy or "-",
                stage.state,
                stage.outcome or "-",
                _return(stage.final_return),
                ", ".join(stage.flags) or "-",
            ]
            for stage in details.stages
        ],
        ["STAGE", "STRATEGY", "STATE", "OUTCOME", "RETURN", "FLAGS"],
    )
    _section(
        "artifacts",
        [[_size(a.bytes), a.path, ", ".join(a.roles)] for a in details.artifacts],
        ["SIZE", "PATH", "ROLE"],
    )


def _source(details: RunDetails) -> str | None:
    if details.config_source is None:
        return None
    overrides = " ".join(f"--set {shlex.quote(str(o))}" for o in details.overrides)
    return details.config_source + (f" {overrides}" if overrides else "")


def _section(title: str, rows: list[list[str]], headers: list[str] | None = None) -> None:
    """A titled block: KEY VALUE pairs, or a table under `headers`; nothing when empty."""
    if not rows:
        return
    click.echo(f"\n{title}:")
    if headers is None:
        _pairs([(key, value) for key, value in rows])
    else:
        print_table(headers, rows, indent=2)


def _pairs(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(key) for key, _value in rows)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}".rstrip())


@runs.command("compare")
@click.argument("run_names", metavar="RUN RUN [RUN...]", nargs=-1, required=True)
@runs_root_option
@json_option
def compare_command(run_names: tuple[str, ...], runs_root: Path | None, as_json: bool) -> None:
    """Two or more runs side by side: the config settings that differ (dotted keys), the
    package versions that differ, and every run's final metrics (from result.json). Each
    RUN is a run's name under the runs root (or the start of one) or a path to a run."""
    from townlet_core.runtime import runs_index

    if len(run_names) < 2:
        raise click.UsageError("compare takes two or more runs")
    root = runs_root or runs_index.default_runs_root()
    paths = [runs_index.resolve_run(name, root) for name in run_names]
    seen: dict[Path, str] = {}
    for name, path in zip(run_names, paths, strict=True):
        if path.resolve() in seen:
            raise click.UsageError(f"'{name}' and '{seen[path.resolve()]}' are the same run")
        seen[path.resolve()] = name
    comparison = runs_index.compare_runs([runs_index.read_run(path) for path in paths])
    for note in comparison.notes:
        click.echo(f"townlet: warning: {note}", err=True)
    if as_json:
        click.echo(runs_index.to_json(comparison))
    else:
        _print_comparison(comparison)


def _print_comparison(comparison: Comparison) -> None:
    labels = comparison.runs
    if comparison.config:
        click.echo(f"config: {len(comparison.config)} of {comparison.config_keys} settings differ")
        _side_by_side("SETTING", labels, comparison.config)
    else:
        click.echo(f"config: the same ({comparison.config_keys} settings)")
    if comparison.versions:
        click.echo("\nversions that differ:")
        _side_by_side("PACKAGE", labels, comparison.versions)
    else:
        click.echo("versions: the same")
    click.echo("\nfinal metrics:")
    _side_by_side("METRIC", labels, comparison.metrics)


def _side_by_side(first: str, labels: Sequence[str], rows: Sequence[ComparedRow]) -> None:
    """One row per key, one column per run; "-" where a run does not have the key."""
    table = [
        [row.key, *(_cell(row.values[label]) if label in row.values else "-" for label in labels)]
        for row in rows
    ]
    print_table([first, *labels], table, indent=2)


# --------------------------------------------------------------------------- formatting


def _cell(value: Any, width: int | None = CELL_WIDTH) -> str:
    """A value in a table cell: text as it is, a float to 6 digits, the rest as JSON; cut
    to `width` characters (None: never)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        from townlet_core.runtime.runs_index import json_ready

        text = json.dumps(json_ready(value))
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def _return(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _return_with_field(summary: RunSummary) -> str | None:
    if summary.final_return is None:
        return None
    return f"{_return(summary.final_return)} (result.json {summary.return_field})"


def _duration(seconds: float | None) -> str:
    from townlet_core.runtime.runs_index import format_duration

    return format_duration(seconds)


def _when(when: datetime | None, absent: str = "-", suffix: str = "") -> str:
    if when is None:
        return absent
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + suffix


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
