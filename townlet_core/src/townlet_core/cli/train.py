"""`townlet train`: run one strategy by name and print its result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from townlet_core.cli._common import make_registry

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO
    from townlet_core.runtime.orchestrator import Orchestrator


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
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    help="Train data-parallel in N processes on this machine (torchrun; ppo and bc). "
    "A resume uses the run's own number.",
)
@click.option(
    "--track",
    metavar="NAMES",
    help="Also send the run's config, metrics and artifacts to these trackers, comma-separated "
    "(tensorboard, mlflow, or a tracker plugin's); wins over the config's 'track'; '' for none.",
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
    nproc: int | None,
    track: str | None,
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
                ("--track", track),
            )
            if value
        ]
        if given:
            raise click.UsageError(
                f"--resume continues a run with its recorded settings; drop {', '.join(given)}"
            )
    options: dict[str, Any] = {
        "config": config_file,
        "overrides": overrides if track is None else (*overrides, f"track={track}"),
        "seed": seed,
        "device": device,
        "run_dir": run_dir,
        "nproc": nproc,
    }
    flags = [
        flag
        for flag, on in (("--exit-on-failure", exit_on_failure), ("--json", as_json), ("-q", quiet))
        if on
    ]
    if not orchestrator.world.distributed:  # not a rank yet: start the ranks if asked to
        code = _launch_ranks(ctx, orchestrator, strategy, resume_dir, options, flags)
        if code is not None:
            ctx.exit(code)
    try:
        if resume_dir is not None:
            result = orchestrator.resume(resume_dir)
        else:
            result = orchestrator.run(strategy, **options)
    except KeyboardInterrupt:
        where = orchestrator.last_run_dir
        raise RunInterruptedError(
            f"interrupted; {where} keeps what was written so far (run.json says 'interrupted'; "
            "strategies that checkpoint continue with 'townlet train --resume "
            f"{where}')"
            if where
            else "interrupted before the run directory was created"
        ) from None
    if not orchestrator.world.is_writer:
        pass  # rank 0 prints the run's result, once
    elif as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(format_result(result, orchestrator.last_run_dir))
    failed = result.status == "failed" or (exit_on_failure and not result.accepted())
    ctx.exit(1 if failed else 0)


def _launch_ranks(
    ctx: click.Context,
    orchestrator: Orchestrator,
    strategy: str | None,
    resume_dir: Path | None,
    options: dict[str, Any],
    flags: list[str],
) -> int | None:
    """Start the ranks of a data-parallel run with torchrun and return its exit code, or
    None when the run asked for one process. The run is planned (and checked) first, and
    every rank gets the seed and run directory the plan settled."""
    from townlet_core.errors import RunDirectoryError
    from townlet_core.runtime.launch import launch
    from townlet_core.runtime.run_dir import RunDirectory

    root = ctx.find_root().obj or {}
    prefix = ["-v"] if root.get("verbose") else []
    if resume_dir is not None:
        snapshot = RunDirectory(resume_dir).read_snapshot_to_resume()
        recorded = snapshot.get("config", {}).get("nproc", 1)
        if type(recorded) is not int or recorded < 1:
            raise RunDirectoryError(
                f"{resume_dir / 'config.json'}: nproc {str(recorded)[:40]!r} is not a number of "
                "processes; the file is damaged, start a new run"
            )
        if options["nproc"] not in (None, recorded):
            raise click.UsageError(
                f"{resume_dir} was run with {recorded} process(es); a resume continues it with "
                f"the same number (drop --nproc)"
            )
        if recorded == 1:
            return None
        return launch(recorded, [*prefix, "train", "--resume", str(resume_dir), *flags], resume_dir)
    run_config, _loaded = orchestrator.plan(strategy, **options)
    settings = run_config.run
    if settings.nproc == 1:
        return None
    path = RunDirectory.choose(
        settings.run_dir, runs_root=settings.runs_root, strategy=run_config.strategy
    )
    args = [*prefix, "train", "--strategy", run_config.strategy]
    if options["config"] is not None:
        args += ["--config", str(options["config"])]
    for override in options["overrides"]:
        args += ["--set", override]
    args += ["--seed", str(settings.seed), "--device", settings.device, "--run-dir", str(path)]
    if not orchestrator.quiet:
        click.echo(
            f"townlet: starting {settings.nproc} ranks of '{run_config.strategy}' in {path} "
            f"(seed {settings.seed})",
            err=True,
        )
    return launch(settings.nproc, [*args, *flags], path)


def format_result(result: TrainingResultDTO, run_dir: Path | None) -> str:
    """The summary a person reads when the run ends (`townlet_core.cli.summary`)."""
    from townlet_core.cli.summary import format_summary

    return format_summary(result, run_dir)
