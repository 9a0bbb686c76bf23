"""Put a report together: read each run, draw its figures (and, for several runs, the
curves overlaid), and lay them out as one HTML page. Returns the page; writing it is the
caller's (the CLI writes it atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from townlet_core.__about__ import __version__
from townlet_core.report.catalog import FIGURES, FigureSpec
from townlet_core.report.page import RunSection, render_page
from townlet_core.report.plotting import Rendered, overlay_figure, require_matplotlib, run_figure
from townlet_core.report.rundata import RunData, Segment, read_run_data


@dataclass(frozen=True)
class Report:
    html: str
    runs: int
    figures: int


def build_report(
    paths: Sequence[Path], *, title: str | None = None, now: datetime | None = None
) -> Report:
    """The report of the runs in `paths` (run folders; see `runs_index.resolve_run`).
    MatplotlibMissingError, before anything is read, when matplotlib is not installed."""
    require_matplotlib()
    runs = [read_run_data(path) for path in paths]
    labels = _labels(runs)
    sections = [_section(run, label) for run, label in zip(runs, labels, strict=True)]
    overlays = _overlays(runs, labels) if len(runs) > 1 else []
    if title is None:
        title = (
            f"Townlet report: {labels[0]}"
            if len(runs) == 1
            else f"Townlet report: {len(runs)} runs"
        )
    page = render_page(
        title=title,
        generated=now or datetime.now(UTC),
        version=__version__,
        sections=sections,
        overlays=overlays,
    )
    count = len(overlays) + sum(len(f) for s in sections for _heading, f in s.figures)
    return Report(html=page, runs=len(runs), figures=count)


def _labels(runs: Sequence[RunData]) -> list[str]:
    names = [run.summary.name for run in runs]
    return names if len(set(names)) == len(names) else [run.summary.path for run in runs]


def _section(run: RunData, label: str) -> RunSection:
    groups: list[tuple[str, list[Rendered]]] = []
    drawn: set[str] = set()
    if run.timeline:
        figures = _figures(run.timeline, label, run)
        heading = "Against environment steps" if run.per_epoch else ""
        groups.append((heading, figures))
        drawn.update(figure.key for figure in figures)
    for segment, stage in run.per_epoch:
        figures = _figures([segment], label if stage is None else f"{label} / {stage.name}", None)
        heading = ""
        if stage is not None:
            outcome = stage.outcome or stage.state
            heading = f"Stage {stage.name} ({stage.strategy or '-'}, {outcome}), by epoch"
        groups.append((heading, figures))
        drawn.update(figure.key for figure in figures)
    has_metrics = bool(run.timeline or run.per_epoch)
    left_out = [_describe(spec) for spec in FIGURES if spec.key not in drawn] if has_metrics else []
    return RunSection(run=run, figures=groups, left_out=left_out)


def _figures(segments: Sequence[Segment], label: str, run: RunData | None) -> list[Rendered]:
    drawn = []
    for spec in FIGURES:
        figure = run_figure(
            spec,
            segments,
            title=f"{spec.title}: {label}",
            stages=run.stages if run is not None else (),
            guardrails=run.guardrails if run is not None else (),
        )
        if figure is not None:
            drawn.append(figure)
    return drawn


def _overlays(runs: Sequence[RunData], labels: Sequence[str]) -> list[Rendered]:
    """One figure per catalog entry for the runs counting environment steps, and one for
    those counting epochs, each only where two or more runs share the axis."""
    by_steps = [
        (label, run.timeline) for run, label in zip(runs, labels, strict=True) if run.timeline
    ]
    by_epoch = [
        (label, [run.per_epoch[0][0]])
        for run, label in zip(runs, labels, strict=True)
        if not run.timeline and run.per_epoch
    ]
    overlays = []
    for group, axis in ((by_steps, "environment steps"), (by_epoch, "epochs")):
        if len(group) < 2:
            continue
        for spec in FIGURES:
            figure = overlay_figure(spec, group, title=f"{spec.title}: {len(group)} runs by {axis}")
            if figure is not None:
                overlays.append(figure)
    return overlays


def _describe(spec: FigureSpec) -> str:
    return f"{spec.title} ({', '.join(spec.fields)})"
