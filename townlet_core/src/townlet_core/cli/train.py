"""`townlet train`: run one strategy by name and print its result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from townlet_core.cli._common import make_registry

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO


@click.command()
@click.option(
    "-s", "--strategy", metavar="NAME", help="Strategy to run (see 'townlet strategies list')."
)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (.yaml, .yml, .toml or .json).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one setting, e.g. --set seed=3 --set cem.iterations=20 (repeatable).",
)
@click.option("--seed", type=int, help="Seed for every random generator of the run.")
@click.option("--device", metavar="DEVICE", help="auto (default), cpu, cuda, cuda:N or mps.")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run directory (must not hold an earlier run). Default: runs/NAME-TIME-XXXX.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Continue a stopped run in RUN_DIR from its latest checkpoint (its own config).",
)
@click.option(
    "--exit-on-failure",
    is_flag=True,
    help="Exit 1 unless the run met its acceptance (for anneal: unless the status is PASS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result DTO as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display or status lines.")
@click.pass_context
def train(
    ctx: click.Context,
    strategy: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    seed: int | None,
    device: str | None,
    run_dir: Path | None,
    resume_dir: Path | None,
    exit_on_failure: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train with a strategy: validate its config, create a run directory
    (config.json, metrics.jsonl, result.json), run it and print the result.

    Exit code 0 on success, 1 when the run finished but failed its own acceptance,
    2 for usage, config, data or plugin errors.
    """
    from townlet_core.errors import RunInterruptedError
    from townlet_core.runtime.orchestrator import Orchestrator

    orchestrator = Orchestrator(make_registry(ctx), quiet=quiet)
    if resume_dir is not None:
        given = [
            flag
            for flag, value in (
                ("--strategy", strategy),
                ("--config", config_file),
                ("--set", overrides),
                ("--seed", seed),
                ("--device", device),
                ("--run-dir", run_dir),
            )
            if value
        ]
        if given:
            raise click.UsageError(
                f"--resume continues a run with its recorded settings; drop {', '.join(given)}"
            )
    try:
        if resume_dir is not None:
            result = orchestrator.resume(resume_dir)
        else:
            result = orchestrator.run(
                strategy,
                config=config_file,
                overrides=overrides,
                seed=seed,
                device=device,
                run_dir=run_dir,
            )
    except KeyboardInterrupt:
        where = orchestrator.last_run_dir
        raise RunInterruptedError(
            f"interrupted; {where} keeps what was written so far (run.json says 'interrupted'; "
            "strategies that checkpoint continue with 'townlet train --resume "
            f"{where}')"
            if where
            else "interrupted before the run directory was created"
        ) from None
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(format_result(result, orchestrator.last_run_dir))
    failed = result.status == "failed" or (exit_on_failure and not result.accepted())
    ctx.exit(1 if failed else 0)


def format_result(result: TrainingResultDTO, run_dir: Path | None) -> str:
    """A short readable summary: outcome, where the files are, the strategy's own numbers."""
    from townlet_core.dto import TrainingResultDTO

    outcome = "succeeded" if result.status == "succeeded" else f"FAILED: {result.status_reason}"
    lines = [
        f"{result.strategy} {result.strategy_version} {outcome} in {result.duration_sec:.1f}s "
        f"(seed {result.seed}, device {result.device})",
    ]
    if run_dir is not None:
        lines.append(f"  run directory: {run_dir}")
    custom = result.summary_text()
    if custom is not None:
        return "\n".join([*lines, *custom])
    base = set(TrainingResultDTO.model_fields)
    for name in type(result).model_fields:
        if name in base:
            continue
        value: Any = getattr(result, name)
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, (list, dict)) and len(str(value)) > 80:
            value = f"({len(value)} items; see result.json)"
        lines.append(f"  {name}: {value}")
    return "\n".join(lines)
