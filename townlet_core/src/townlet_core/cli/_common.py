"""Helpers shared by the command modules (kept light: click only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from townlet_core.runtime.registry import StrategyRegistry


def make_registry(ctx: click.Context, *, quiet_warnings: bool = False) -> StrategyRegistry:
    """The registry for this command, honouring `--strict-plugins`."""
    from townlet_core.runtime.registry import StrategyRegistry

    root = ctx.find_root()
    strict = bool(root.obj and root.obj.get("strict"))
    if quiet_warnings:
        return StrategyRegistry(strict=strict or None, warn=lambda _message: None)
    return StrategyRegistry(strict=strict or None)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: int = 0) -> None:
    """A plain, aligned text table (the last column is never padded)."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    pad = " " * indent
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        click.echo(pad + "  ".join([*cells, str(row[-1])]).rstrip())


def vector_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--vector sync|async|auto`, for a command that steps environments (`what` it gets
    for the same seed either way, e.g. "data", "episodes")."""
    return click.option(
        "--vector",
        type=click.Choice(["sync", "async", "auto"]),
        default="sync",
        show_default=True,
        help="Step the environments in this process, each in a worker process (async), or "
        f"async when one step costs 1 ms or more (auto). Same {what} for the same seed.",
    )
