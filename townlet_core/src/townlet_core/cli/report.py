"""`townlet report RUN [RUN ...] -o report.html`: the runs' curves and final figures as one
self-contained HTML file.

The logic is `townlet_core.report`; this module parses options, resolves the runs with
`runs_index` (as `townlet runs` does) and writes the file atomically. Imports stay inside
the command so `townlet --help` never loads matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_names", metavar="RUN [RUN...]", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("report.html"),
    show_default=True,
    metavar="FILE",
    help="The HTML file to write (replaced atomically if it exists).",
)
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="The folder holding the runs: the runs_root setting of 'townlet train' "
    "(--set runs_root=DIR). Default: runs",
)
@click.option("--title", metavar="TEXT", help="The page's title. Default: the run, or the count.")
def report(
    run_names: tuple[str, ...], output: Path, runs_root: Path | None, title: str | None
) -> None:
    """Write one HTML file (figures embedded; opens offline, no scripts) showing, for each
    RUN, its episodic return against environment steps, losses, entropy, KL, clip fraction,
    explained variance and throughput (bc: loss and accuracy by epoch); the stages of an
    anneal run marked on the curves with their outcome, and each guardrail that fired; and,
    for several runs, the curves overlaid and a table of final figures. Each RUN is a run's
    name under the runs root (or the start of one) or a path to a run. Reads the runs' JSON
    files only. Needs matplotlib: pip install 'townlet-core[report]'."""
    from townlet_core.atomic import atomic_write_text
    from townlet_core.report import build_report
    from townlet_core.report.plotting import require_matplotlib
    from townlet_core.runtime import runs_index

    require_matplotlib()
    root = runs_root or runs_index.default_runs_root()
    paths = [runs_index.resolve_run(name, root) for name in run_names]
    seen: dict[Path, str] = {}
    for name, path in zip(run_names, paths, strict=True):
        if path.resolve() in seen:
            raise click.UsageError(f"'{name}' and '{seen[path.resolve()]}' are the same run")
        seen[path.resolve()] = name
    made = build_report(paths, title=title)
    atomic_write_text(output, made.html)
    size = len(made.html.encode("utf-8"))
    runs = f"{made.runs} run{'s' if made.runs != 1 else ''}"
    click.echo(f"wrote {output}: {runs}, {made.figures} figures, {size / 1024:.0f} KiB")
