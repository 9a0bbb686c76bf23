"""`townlet export CHECKPOINT --format onnx|torchscript -o FILE`: a policy to take away."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "export_format",
    metavar="onnx|torchscript",
    required=True,
    help="onnx (needs townlet-core[onnx]; run with onnxruntime) or torchscript (run with "
    "torch.jit.load).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The file to write (replaced atomically if it exists).",
)
@click.option(
    "--best",
    is_flag=True,
    help="For a run folder: its best checkpoint (PPO with evaluation) instead of the final one.",
)
@click.option(
    "--action-mask",
    is_flag=True,
    help="Add an 'action_mask' input (N, M) bool for a Discrete or MultiDiscrete policy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def export(
    checkpoint: Path,
    export_format: str,
    output: Path,
    best: bool,
    action_mask: bool,
    as_json: bool,
) -> None:
    """Write the greedy policy of CHECKPOINT (a checkpoint folder, or a run folder: its
    final checkpoint) as a file another program runs without Townlet.

    The file takes 'features' (N, F) float32, 'map' (N, C, H, W) float32 when the policy
    reads one, and 'action_mask' (N, M) bool with --action-mask; it returns 'actions' as the
    env takes them (Box actions clipped or squashed into the bounds). The observation
    normalisation the policy was trained with is part of the file. The export is run on
    probe observations and must reproduce the checkpoint's actions before it is written.
    """
    from townlet_core.runtime.torch_guard import require_torch

    require_torch("townlet export", "bc")
    from townlet_core.nn.export import export_policy

    exported = export_policy(
        checkpoint, output, format=export_format, action_mask=action_mask, best=best
    )
    if as_json:
        payload = {
            "path": str(exported.path),
            "format": exported.format,
            "checkpoint": str(exported.checkpoint),
            "inputs": {name: list(dims) for name, dims in exported.inputs.items()},
            "output": {"actions": list(exported.output), "dtype": exported.output_dtype},
            "action_space": exported.action_space.as_dict(),
            "probe_rows": exported.probe_rows,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(exported.describe())
