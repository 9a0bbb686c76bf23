"""The `townlet` command. Each command group lives in its own module, imported only when
that command runs, so `townlet --help` and `--version` stay fast and never import torch."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from townlet_core.__about__ import __version__

#: name -> (import string of the click command, one-line help shown by `townlet --help`)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "capture": (
        "townlet_core.cli.capture:capture",
        "Record trajectories from a Gymnasium environment.",
    ),
    "config": (
        "townlet_core.cli.config_cmd:config",
        "Convert original Townlet training configs (migrate).",
    ),
    "dataset": ("townlet_core.cli.dataset:dataset", "Inspect and validate datasets."),
    "evaluate": (
        "townlet_core.cli.evaluate:evaluate",
        "Run a trained checkpoint in an environment and report returns.",
    ),
    "export": (
        "townlet_core.cli.export:export",
        "Write a checkpoint's greedy policy as an ONNX or TorchScript file.",
    ),
    "promotion": (
        "townlet_core.cli.promotion:promotion",
        "Promotion ledger: status, evaluate, promote, rollback.",
    ),
    "report": (
        "townlet_core.cli.report:report",
        "Write an HTML report of runs: curves, stages, final figures.",
    ),
    "runs": (
        "townlet_core.cli.runs:runs",
        "List, show and compare the runs under a runs root.",
    ),
    "strategies": (
        "townlet_core.cli.strategies:strategies",
        "List and inspect installed strategies.",
    ),
    "train": ("townlet_core.cli.train:train", "Train with a strategy and write a run directory."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; `--help` uses static summaries."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            import importlib

            module_name, _, attribute = LAZY_COMMANDS[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, LAZY_COMMANDS[name][1]) for name in sorted(LAZY_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Core version, then each installed strategy: metadata only, no plugin is imported."""
    if not value or ctx.resilient_parsing:
        return
    from townlet_core.runtime.registry import StrategyRegistry

    click.echo(f"townlet-core {__version__}")
    records = StrategyRegistry(warn=lambda _message: None).records()
    if not records:
        click.echo("strategies: none installed (e.g. pip install 'townlet-core[ppo]')")
    else:
        click.echo("strategies:")
        width = max(len(r.name) for r in records)
        for record in records:
            status = "" if record.status == "ok" else f"  [{record.status}]"
            click.echo(f"  {record.name:<{width}}  {record.distribution} {record.version}{status}")
    ctx.exit(0)


#: Set by the root command's callback; read when an error is reported after click returns.
_OPTIONS = {"verbose": False}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the core version and the installed strategies, then exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--strict-plugins",
    is_flag=True,
    envvar="TOWNLET_STRICT_PLUGINS",
    help="Treat any plugin problem as an error (also TOWNLET_STRICT_PLUGINS=1).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, strict_plugins: bool) -> None:
    """Townlet: train agent policies with pluggable strategies.

    Strategies are separate distributions; `townlet strategies list` shows the installed
    ones. Exit codes: 0 success, 1 a run that finished but failed its acceptance, 2 usage,
    config, data or plugin errors.
    """
    _OPTIONS["verbose"] = verbose
    ctx.obj = {"verbose": verbose, "strict": strict_plugins}


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run the CLI, turn known errors into one line and an exit code."""
    from townlet_core.errors import TownletError

    _single_threaded_blas()
    _interrupt_on_sigterm()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode click returns the code of `ctx.exit(code)` instead of exiting.
        code = cli.main(args=args, prog_name="townlet", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.Abort:
        click.echo("townlet: aborted", err=True)
        return 130
    except TownletError as exc:
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("townlet: interrupted; files written so far are kept", err=True)
        return 130
    except Exception as exc:
        _report(exc)
        return 2
    return code if isinstance(code, int) else 0


def _single_threaded_blas() -> None:
    """Keep NumPy's BLAS on one thread unless the user chose otherwise.

    Torch does the heavy arithmetic; NumPy's BLAS only ever sees tiny arrays here (expert
    controllers, statistics), yet its idle threads spin and, on a small machine, starve
    torch's threads: a 20x slowdown of training measured on 2 cores. Must run before
    NumPy is imported, so the CLI does it first thing.
    """
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so a stopped run records 'interrupted' and exits 130."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _report(exc: BaseException) -> None:
    """One line on stderr; the traceback too with `townlet -v`."""
    from townlet_core.errors import StrategyRunError, TownletError

    verbose = _OPTIONS["verbose"]
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc) or type(exc).__name__
    rank, size = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is not None and size not in (None, "1"):  # a rank of a torchrun world says which
        message = f"rank {rank} of {size}: {message}"
    if isinstance(exc, TownletError):
        # A wrapped bug (a strategy raising, say) deserves a pointer to its traceback.
        wrapped_bug = isinstance(exc, StrategyRunError) and exc.__cause__ is not None
        tail = " (run 'townlet -v ...' for the traceback)" if wrapped_bug and not verbose else ""
        click.echo(f"townlet: error: {message}{tail}", err=True)
    else:
        tail = "" if verbose else " (run 'townlet -v ...' for the traceback)"
        click.echo(f"townlet: error: {type(exc).__name__}: {message}{tail}", err=True)
