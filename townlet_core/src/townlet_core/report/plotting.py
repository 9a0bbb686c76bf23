"""Draw the report's figures with matplotlib, as PNG bytes.

matplotlib is an optional dependency (`pip install 'townlet-core[report]'`), imported here
only, inside the functions: nothing else in townlet loads it. Figures are drawn on their own
`Figure` with the Agg canvas, never through pyplot, so no global backend or state is touched.
"""

from __future__ import annotations

import importlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from townlet_core.errors import TownletError
from townlet_core.report.catalog import FigureSpec, Line, Panel
from townlet_core.report.rundata import GuardrailMark, Segment, StageMark, XKind

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

INSTALL_HINT = "pip install 'townlet-core[report]'"
X_LABELS: dict[XKind, str] = {"env_steps": "environment steps", "epoch": "epoch"}
#: Colours of a stage by its outcome (matplotlib's tab10 colours).
OUTCOME_COLOURS = {
    "accepted": "#2ca02c",
    "held": "#ff7f0e",
    "rolled_back": "#9467bd",
    "failed": "#d62728",
}
GUARDRAIL_COLOUR = "#d62728"
_UNKNOWN_COLOUR = "#7f7f7f"
_WIDTH_IN, _PANEL_IN, _TOP_IN, _BOTTOM_IN, _DPI = 8.0, 2.6, 0.6, 0.45, 100


class MatplotlibMissingError(TownletError, ImportError):
    """The report draws with matplotlib, which is not installed."""


@dataclass(frozen=True)
class Rendered:
    """A drawn figure: its catalog key, a caption, and the PNG."""

    key: str
    title: str
    png: bytes
    #: the metrics fields it shows (those of its catalog entry that had data)
    fields: tuple[str, ...] = ()


def require_matplotlib() -> None:
    """Raise MatplotlibMissingError, with the command that installs it, when it is absent."""
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise MatplotlibMissingError(
            f"townlet report draws its figures with matplotlib, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from exc


def panels_with_data(spec: FigureSpec, segments: Sequence[Segment]) -> list[Panel]:
    return [p for p in spec.panels if any(s.has(f) for s in segments for f in p.fields)]


def _drawn_fields(panels: Sequence[Panel], segments: Sequence[Segment]) -> tuple[str, ...]:
    return tuple(
        line.field
        for panel in panels
        for line in panel.lines
        if any(s.has(line.field) for s in segments)
    )


def run_figure(
    spec: FigureSpec,
    segments: Sequence[Segment],
    *,
    title: str,
    stages: Sequence[StageMark] = (),
    guardrails: Sequence[GuardrailMark] = (),
) -> Rendered | None:
    """One run's figure (None when none of its fields has data): its stages as spans (a
    stage without environment steps as a line) labelled with name and outcome, and each
    guardrail that fired as a red dotted line."""
    panels = panels_with_data(spec, segments)
    if not panels:
        return None
    figure, axes = _figure(len(panels), title)
    for ax, panel in zip(axes, panels, strict=False):
        _stages(ax, stages)
        present = [line for line in panel.lines if any(s.has(line.field) for s in segments)]
        for number, line in enumerate(present):  # one colour per field, in every stage
            for index, segment in enumerate(segments):
                _draw(ax, segment, line, f"C{number % 10}", labelled=index == 0)
        if spec.key == "return":
            _stage_returns(ax, stages)
        _guardrails(ax, guardrails)
        _finish(ax, panel, segments[0].x_kind)
        _stage_labels(ax, stages)
    return Rendered(spec.key, title, _png(figure), _drawn_fields(panels, segments))


def overlay_figure(
    spec: FigureSpec, runs: Sequence[tuple[str, Sequence[Segment]]], *, title: str
) -> Rendered | None:
    """Several runs' curves on one figure, a colour per run and a line style per field,
    with one legend under the title (None without any data)."""
    from matplotlib.lines import Line2D

    every = [s for _label, segments in runs for s in segments]
    overlaid = FigureSpec(
        spec.key,
        spec.title,
        tuple(Panel(p.title, tuple(line for line in p.lines if line.overlay)) for p in spec.panels),
    )
    panels = panels_with_data(overlaid, every)
    if not panels:
        return None
    shown = [line for p in panels for line in p.lines]
    styles = [line for line in shown if any(s.has(line.field) for s in every)]
    handles = [
        Line2D([], [], color=f"C{number % 10}", linewidth=2, label=label)
        for number, (label, segments) in enumerate(runs)
        if any(s.has(line.field) for s in segments for line in styles)
    ]
    if len({line.style for line in styles}) > 1:
        handles += [_style_handle(line) for line in styles]
    figure, axes = _figure(len(panels), title, legend_rows=math.ceil(len(handles) / 2))
    for ax, panel in zip(axes, panels, strict=False):
        for number, (_label, segments) in enumerate(runs):
            for line in panel.lines:
                for segment in segments:
                    _draw(ax, segment, line, f"C{number % 10}", labelled=False)
        _finish(ax, panel, runs[0][1][0].x_kind, legend=False)
    top = 1 - 0.32 / figure.get_figheight()
    figure.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, top), ncol=2, fontsize=7
    )
    return Rendered(spec.key, title, _png(figure), _drawn_fields(panels, every))


def _style_handle(line: Line) -> Line2D:
    from matplotlib.lines import Line2D

    if line.style == "points":
        return Line2D([], [], color="black", linestyle="none", marker="o", label=line.label)
    if line.style == "dashed":
        return Line2D([], [], color="black", linestyle="--", label=line.label)
    return Line2D([], [], color="black", linestyle="-", label=line.label)


# --------------------------------------------------------------------------- drawing


def _figure(count: int, title: str, *, legend_rows: int = 0) -> tuple[Figure, list[Axes]]:
    """A figure of `count` panels, two to a row, margins fixed in inches (a layout engine
    would cost a second drawing pass), with room under the title for a legend's rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(2, count)
    rows = math.ceil(count / columns)
    top = _TOP_IN if count > 1 else _TOP_IN - 0.2  # a lone panel has no title of its own
    top += 0.17 * legend_rows + (0.1 if legend_rows else 0)
    height = top + _PANEL_IN * rows + _BOTTOM_IN
    figure = Figure(figsize=(_WIDTH_IN, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=11, y=1 - 0.08 / height)
    figure.subplots_adjust(
        left=0.08,
        right=0.98,
        top=1 - top / height,
        bottom=_BOTTOM_IN / height,
        hspace=0.5,
        wspace=0.22,
    )
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for spare in axes[count:]:
        spare.set_visible(False)
    return figure, axes[:count]


def _draw(ax: Axes, segment: Segment, line: Line, colour: str, *, labelled: bool) -> None:
    xs, ys = segment.points(line.field)
    if not xs:
        return
    style: dict[str, Any] = {"label": line.label if labelled else None, "color": colour}
    if line.style == "points":
        ax.plot(xs, ys, linestyle="none", marker="o", markersize=4, **style)
        return
    sparse = len(xs) < 3
    ax.plot(
        xs,
        ys,
        linestyle="--" if line.style == "dashed" else "-",
        linewidth=1.2,
        marker="." if sparse else None,
        **style,
    )


def _stages(ax: Axes, stages: Sequence[StageMark]) -> None:
    """Each stage as a tinted span in its outcome's colour (a stage without environment
    steps as a dashed line); labels come after the data, when the axis range is known."""
    for stage in stages:
        colour = _colour(stage)
        if stage.end > stage.start:
            ax.axvspan(stage.start, stage.end, color=colour, alpha=0.10, linewidth=0)
            ax.axvline(stage.start, color=colour, linewidth=0.8, linestyle=":")
        else:
            ax.axvline(stage.start, color=colour, linewidth=1.2, linestyle="--")


def _stage_labels(ax: Axes, stages: Sequence[StageMark]) -> None:
    """`NAME: OUTCOME` across the top of a wide span, upright beside a narrow one, and on
    the left of a stage's line when it took no environment steps."""
    low, high = ax.get_xlim()
    width = max(high - low, 1e-9)
    for stage in stages:
        text = f"{stage.name}: {stage.outcome or stage.state}"
        style: dict[str, Any] = {
            "transform": ax.get_xaxis_transform(),
            "fontsize": 7,
            "color": _colour(stage),
            "va": "top",
            "clip_on": True,
        }
        if stage.end == stage.start:
            ax.text(stage.start, 0.97, text + " ", rotation=90, ha="right", **style)
        elif (stage.end - stage.start) / width > 0.22:
            middle = (stage.start + stage.end) / 2
            box = {"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1}
            ax.text(middle, 0.97, text, ha="center", bbox=box, **style)
        else:
            ax.text(stage.start, 0.97, " " + text, rotation=90, ha="left", **style)


def _colour(stage: StageMark) -> str:
    return OUTCOME_COLOURS.get(stage.outcome or "", _UNKNOWN_COLOUR)


def _stage_returns(ax: Axes, stages: Sequence[StageMark]) -> None:
    """The greedy return of each stage that took no environment steps (a clone), at its
    place on the axis."""
    points = [
        (s.end, s.final_return) for s in stages if s.end == s.start and s.final_return is not None
    ]
    if points:
        ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            linestyle="none",
            marker="D",
            markersize=5,
            color="black",
            label="greedy return of a stage without env steps (result.json)",
        )


def _guardrails(ax: Axes, guardrails: Sequence[GuardrailMark]) -> None:
    named: set[str] = set()
    for mark in guardrails:
        label = f"guardrail fired: {mark.name}"
        ax.axvline(
            mark.x,
            color=GUARDRAIL_COLOUR,
            linewidth=1.4,
            linestyle=(0, (1, 1.5)),
            label=None if label in named else label,
        )
        named.add(label)


def _finish(ax: Axes, panel: Panel, x_kind: XKind, *, legend: bool = True) -> None:
    from matplotlib.ticker import EngFormatter

    if len(ax.figure.axes) > 1:  # one panel is titled by its figure
        ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(X_LABELS[x_kind], fontsize=8)
    if x_kind == "env_steps":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", framealpha=0.8)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
