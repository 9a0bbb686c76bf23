"""The figures of a report and the metrics fields each is drawn from: one table, read by
the plotting code and by the docs. A figure is drawn for a run when any of its fields has a
number in the run's metrics lines; panels without data are left out of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Style = Literal["line", "points", "dashed"]


@dataclass(frozen=True)
class Line:
    """One metrics field drawn in a panel: a line, evaluation points, or a dashed line."""

    field: str
    label: str
    style: Style = "line"
    #: drawn when several runs are overlaid (a figure's secondary lines are not)
    overlay: bool = True


@dataclass(frozen=True)
class Panel:
    title: str
    lines: tuple[Line, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(line.field for line in self.lines)


@dataclass(frozen=True)
class FigureSpec:
    key: str
    title: str
    panels: tuple[Panel, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(field for panel in self.panels for field in panel.fields)


def _one(key: str, title: str, *lines: Line) -> FigureSpec:
    return FigureSpec(key=key, title=title, panels=(Panel(title=title, lines=lines),))


FIGURES: tuple[FigureSpec, ...] = (
    _one(
        "return",
        "Episodic return",
        Line("episode_return_mean", "training episodes (episode_return_mean)"),
        Line("mean_return", "population mean (mean_return)"),
        Line("eval_mean_return", "greedy evaluation (eval_mean_return)", "points"),
    ),
    FigureSpec(
        key="losses",
        title="Losses",
        panels=(
            Panel("policy loss", (Line("loss_policy", "loss_policy"),)),
            Panel("value loss", (Line("loss_value", "loss_value"),)),
            Panel("entropy term", (Line("loss_entropy", "loss_entropy"),)),
            Panel("total loss", (Line("loss_total", "loss_total"),)),
            Panel(
                "cloning loss",
                (
                    Line("loss", "training (loss)"),
                    Line("val_loss", "validation (val_loss)", "dashed"),
                ),
            ),
        ),
    ),
    _one(
        "entropy",
        "Policy entropy",
        Line("batch_entropy_mean", "mean over the batch (batch_entropy_mean)"),
    ),
    _one(
        "kl",
        "KL divergence",
        Line("approx_kl", "approx_kl"),
        Line("kl_divergence", "kl_divergence", "dashed", overlay=False),
    ),
    _one(
        "clip_fraction",
        "Clip fraction",
        Line("clip_fraction", "mean (clip_fraction)"),
        Line("clip_fraction_max", "largest minibatch (clip_fraction_max)", "dashed", overlay=False),
    ),
    _one(
        "explained_variance",
        "Explained variance of the value function",
        Line("explained_variance", "explained_variance"),
    ),
    _one(
        "accuracy",
        "Action accuracy",
        Line("accuracy", "training (accuracy)"),
        Line("val_accuracy", "validation (val_accuracy)", "dashed"),
    ),
    _one(
        "throughput",
        "Throughput",
        Line("steps_per_second", "environment steps per second (steps_per_second)"),
        Line("samples_per_second", "samples per second (samples_per_second)"),
    ),
)
