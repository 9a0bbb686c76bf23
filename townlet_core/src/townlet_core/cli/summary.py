"""What `townlet train` prints when a run ends: a summary to read at a glance.

The first line says which strategy ran, how it ended, its wall time, seed and device. Then
the result's own `summary_lines()` (what it trained on, the greedy return, the steps and
their rate, the strategy's figures), where the checkpoint and the run directory are, and
the commands that make sense next. A result whose `summary_text()` gives lines (anneal's
stage table) prints those instead. The full result is in result.json and on `--json`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO

#: The file `townlet export` writes in the suggested command.
EXPORT_FILE = "policy.onnx"


def format_summary(result: TrainingResultDTO, run_dir: Path | None) -> str:
    outcome = "succeeded" if result.status == "succeeded" else f"FAILED: {result.status_reason}"
    header = (
        f"{result.strategy} {result.strategy_version} {outcome} in {result.duration_sec:.1f}s "
        f"(seed {result.seed}, device {result.device})"
    )
    custom = result.summary_text()
    if custom is not None:
        where = [f"  run directory: {run_dir}"] if run_dir is not None else []
        return "\n".join([header, *where, *custom])
    lines = list(result.summary_lines())
    checkpoint = run_dir / result.checkpoint if run_dir and result.checkpoint else None
    if checkpoint is not None:
        lines.append(f"checkpoint: {checkpoint}")
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
        for index, command in enumerate(next_commands(result, run_dir, checkpoint)):
            lines.append(f"{'next' if index == 0 else ''}: {command}")
    return "\n".join([header, *aligned(lines)])


def next_commands(result: TrainingResultDTO, run_dir: Path, checkpoint: Path | None) -> list[str]:
    """Evaluate and export a Townlet checkpoint (a folder with checkpoint.json; a strategy's
    own file format has neither), and the run's report."""
    from townlet_core.checkpoints import INFO_FILE

    commands = []
    townlet_checkpoint = checkpoint is not None and (checkpoint / INFO_FILE).is_file()
    if townlet_checkpoint:
        assert checkpoint is not None
        env = getattr(result, "eval_env", None) or getattr(result, "env_id", None)
        on_env = f" --env {shlex.quote(str(env))}" if env else ""
        commands.append(f"townlet evaluate {_quoted(checkpoint)}{on_env}")
    commands.append(f"townlet report {_quoted(run_dir)}")
    if townlet_checkpoint:
        assert checkpoint is not None
        commands.append(f"townlet export {_quoted(checkpoint)} --format onnx -o {EXPORT_FILE}")
    return commands


def aligned(lines: list[str]) -> list[str]:
    """Indent each `label: text` line and start the texts in one column (a line with an
    empty label continues the one above it; a line without a label is printed as it is)."""
    pairs = [line.partition(": ") for line in lines]
    width = max((len(label) for label, sep, _ in pairs if sep), default=0) + 2
    out = []
    for label, sep, text in pairs:
        if not sep:
            out.append(f"  {label}")
        else:
            out.append(f"  {(label + ':') if label else '':<{width}}{text}")
    return out


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))
