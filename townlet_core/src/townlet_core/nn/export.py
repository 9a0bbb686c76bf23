"""Export a checkpoint's greedy policy as a file another program runs without Townlet.

Two formats: ONNX (run with onnxruntime, or any ONNX runtime) and TorchScript (run with
`torch.jit.load`, no Townlet needed). The file holds everything between an observation and
the action the env takes: the observation statistics the policy was trained with
(normalisation is part of the graph), the network, the greedy rule of its action space, and
Box actions clipped or squashed into the env's bounds as the checkpoint's `action_mapping`
says: the same actions `townlet evaluate` takes.

| input | shape | dtype | present when |
| --- | --- | --- | --- |
| `features` | (N, F) | float32 | the policy reads features (F >= 1) |
| `map` | (N, C, H, W) | float32 | the policy reads a map or image |
| `action_mask` | (N, M) | bool | exported with `action_mask=True`; True = legal |

M is n for Discrete(n) and sum(nvec) for MultiDiscrete, laid out as the env's masks are.

| action space | output `actions` |
| --- | --- |
| Discrete(n) | (N,) int64, the argmax |
| Box(A) | (N, A) float32, the Gaussian's mean, clipped or squashed into the bounds |
| MultiDiscrete(nvec) | (N, A) int64, the argmax of each dimension |
| MultiBinary(A) | (N, A) int8, 1 where the logit is > 0 |

N is free (a dynamic batch axis). TorchScript takes the present inputs positionally, in the
order of the table. Observations are what the policy was trained on: an env whose
observations Townlet adapts (images, Dict or Discrete observations, see
`townlet_core.envs.observations`) must be adapted the same way by the caller.

Before a file is written, the exported model is run (onnxruntime, or `torch.jit.load`) on a
batch of probe observations and must reproduce the checkpoint's own greedy actions, those of
`TorchPolicy` (equal for discrete kinds, within 1e-5 for Box); the file is then written
atomically. Both torch
exporters used here (the TorchScript-based `torch.onnx.export(dynamo=False)`, which needs no
onnxscript, and `torch.jit.trace`) are deprecated in torch 2.9+ but work in the torch this
project pins; their deprecation warnings are silenced here.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from townlet_core._suggest import did_you_mean
from townlet_core.atomic import atomic_write_bytes
from townlet_core.checkpoints import CheckpointInfo
from townlet_core.data.action_space import BOX, MULTI_BINARY, ActionSpace
from townlet_core.envs.spaces import MASKABLE_KINDS, ActionMapping
from townlet_core.errors import ConfigError, TownletError
from townlet_core.nn.checkpoint import load_checkpoint
from townlet_core.nn.locate import locate_checkpoint
from townlet_core.nn.network import PolicyNetwork
from townlet_core.nn.policy import TorchPolicy

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "torchscript")
FEATURES, MAP, ACTION_MASK, ACTIONS = "features", "map", "action_mask", "actions"
#: ONNX opset of the exported graph (onnxruntime 1.14 and later run it).
ONNX_OPSET = 17
#: Probe observations the exported file must reproduce before it is written.
PROBE_ROWS = 256
#: Box actions of the exported file may differ from torch's by this much.
BOX_TOLERANCE = 1e-5
#: What `pip install` brings the optional packages of each format.
ONNX_EXTRA = "pip install 'townlet-core[onnx]'"
#: The name of the Townlet description stored inside an exported file.
METADATA_KEY = "townlet"


class ExportError(TownletError):
    """A policy cannot be exported as asked (an option its action space does not have, or
    an exporter that cannot convert it), or the exported file does not reproduce it."""


class ExportDependencyError(TownletError):
    """A package the export format needs (onnx, onnxruntime) is not installed."""


@dataclass(frozen=True)
class ExportedPolicy:
    """What `export_policy` wrote: where, which inputs, and how it was checked."""

    path: Path
    format: ExportFormat
    checkpoint: Path
    inputs: dict[str, tuple[str | int, ...]]
    output: tuple[str | int, ...]
    output_dtype: str
    action_space: ActionSpace
    probe_rows: int

    def describe(self) -> str:
        """Lines for people: the file, its inputs and output, and the check it passed."""

        def shape(dims: tuple[str | int, ...]) -> str:
            return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"

        inputs = ", ".join(f"{name} {shape(dims)}" for name, dims in self.inputs.items())
        return "\n".join(
            [
                f"wrote {self.path} ({self.format}) from {self.checkpoint}",
                f"  inputs: {inputs}",
                f"  output: {ACTIONS} {shape(self.output)} {self.output_dtype} "
                f"({self.action_space.describe()})",
                f"  checked: same greedy actions as the checkpoint on {self.probe_rows} "
                "probe observations",
            ]
        )


class GreedyPolicy(nn.Module):
    """A network's greedy actions, in the form the env takes, from positional inputs named
    by `input_names` (a subset of features, map, action_mask, in that order)."""

    low: torch.Tensor
    high: torch.Tensor
    bounded: torch.Tensor

    def __init__(
        self, network: PolicyNetwork, mapping: ActionMapping, input_names: tuple[str, ...]
    ) -> None:
        super().__init__()
        self.network = network.eval()
        self.input_names = input_names
        self.space = network.action_space
        self.mapping = mapping
        self.bounds = self.space.kind == BOX and None not in (self.space.low, self.space.high)
        low = np.asarray(self.space.low if self.bounds else (), dtype=np.float32)
        high = np.asarray(self.space.high if self.bounds else (), dtype=np.float32)
        bounded = np.isfinite(low) & np.isfinite(high)
        if mapping == "squash":  # unbounded dimensions pass through: keep their arithmetic finite
            low, high = np.where(bounded, low, 0.0), np.where(bounded, high, 0.0)
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.register_buffer("bounded", torch.as_tensor(bounded))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.input_names, inputs, strict=True))
        map_ = named.get(MAP)
        features = named.get(FEATURES)
        if features is None:  # an image alone: the network reads no features
            assert map_ is not None
            features = map_.new_zeros((map_.shape[0], 0))
        params, _values = self.network(features, map_)
        actions = self.network.distribution.greedy(params, named.get(ACTION_MASK))
        return self._env_actions(actions)

    def _env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """`townlet_core.envs.spaces.env_actions`, in torch."""
        if self.space.kind == MULTI_BINARY:
            return actions.to(torch.int8)
        if not self.bounds:
            return actions
        if self.mapping == "squash":
            squashed = self.low + (torch.tanh(actions) + 1.0) * 0.5 * (self.high - self.low)
            return torch.where(self.bounded, squashed, actions)
        return torch.minimum(torch.maximum(actions, self.low), self.high)


def input_names(info: CheckpointInfo, action_mask: bool) -> tuple[str, ...]:
    """The inputs an exported policy of this checkpoint takes, in positional order."""
    names = [FEATURES] if info.observation.features_dim else []
    if info.observation.map_shape is not None:
        names.append(MAP)
    if action_mask:
        names.append(ACTION_MASK)
    return tuple(names)


def input_shapes(info: CheckpointInfo, names: tuple[str, ...]) -> dict[str, tuple[str | int, ...]]:
    shapes: dict[str, tuple[str | int, ...]] = {}
    for name in names:
        if name == FEATURES:
            shapes[name] = ("N", info.observation.features_dim)
        elif name == MAP:
            assert info.observation.map_shape is not None
            shapes[name] = ("N", *info.observation.map_shape)
        else:
            shapes[name] = ("N", int(info.space().mask_width or 0))
    return shapes


def export_policy(
    checkpoint: Path | str,
    output: Path | str,
    *,
    format: str,
    action_mask: bool = False,
    best: bool = False,
    probe_rows: int = PROBE_ROWS,
    seed: int = 0,
) -> ExportedPolicy:
    """Export the greedy policy of `checkpoint` (a checkpoint folder, or a run folder: its
    final checkpoint, or with `best` its best) to `output` as `format`, after checking the
    exported file reproduces it on `probe_rows` probe observations drawn with `seed`."""
    if format not in FORMATS:
        raise ConfigError(
            f"unknown export format '{format}' (the formats are {', '.join(FORMATS)})"
            f"{did_you_mean(format, FORMATS)}"
        )
    fmt: ExportFormat = "onnx" if format == "onnx" else "torchscript"
    if fmt == "onnx":
        require_onnx()
    target = Path(output).expanduser()
    if target.is_dir():
        raise ConfigError(
            f"{target}: is a folder; name the file to write, e.g. {target}/policy.onnx"
        )
    folder = locate_checkpoint(checkpoint, best=best)
    network, info = load_checkpoint(folder)
    space = info.space()
    if action_mask and space.kind not in MASKABLE_KINDS:
        raise ExportError(
            f"{folder}: cannot export an action_mask input for {space.describe()}: masks "
            "restrict discrete and multi_discrete actions only; export without it"
        )
    names = input_names(info, action_mask)
    policy = GreedyPolicy(network.to("cpu"), info.action_mapping, names)
    for parameter in policy.parameters():
        parameter.requires_grad_(False)
    probe = probe_inputs(network, names, probe_rows, seed)
    expected = _reference_actions(network, info.action_mapping, names, probe)
    metadata = {
        "inputs": {name: list(dims) for name, dims in input_shapes(info, names).items()},
        "output": ACTIONS,
        "action_space": space.as_dict(),
        "action_mapping": info.action_mapping,
        "checkpoint_weights_sha256": info.weights_sha256,
        "env_id": info.env_id,
    }
    if fmt == "onnx":
        data = _onnx_bytes(folder, policy, probe, names, metadata)
        found = _run_onnx(data, names, probe)
    else:
        data = _torchscript_bytes(folder, policy, probe, metadata)
        found = _run_torchscript(data, probe)
    _check_reproduces(folder, fmt, space, expected, found)
    atomic_write_bytes(target, data)
    return ExportedPolicy(
        path=target,
        format=fmt,
        checkpoint=folder,
        inputs=input_shapes(info, names),
        output=("N", *space.shape),
        output_dtype=str(expected.dtype),
        action_space=space,
        probe_rows=probe_rows,
    )


def require_onnx() -> None:
    """ExportDependencyError unless onnx and onnxruntime import."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError as exc:
            raise ExportDependencyError(
                f"exporting to ONNX needs {module}, which is not installed ({exc}); install "
                f"with: {ONNX_EXTRA} (or export with --format torchscript)"
            ) from exc


def probe_inputs(
    network: PolicyNetwork, names: tuple[str, ...], rows: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """Observations to check an export on: features spread around the policy's own
    observation statistics (or standard normal, without normalisation), maps uniform in
    [0, 1), and masks allowing each action with probability 0.7 (always at least one per row
    and dimension)."""
    generator = torch.Generator().manual_seed(seed)
    observation = network.observation
    inputs: list[torch.Tensor] = []
    for name in names:
        if name == FEATURES:
            noise = torch.randn(rows, observation.features_dim, generator=generator)
            statistics = network.observation_normalizer
            if statistics is None:
                inputs.append(noise)
            else:
                spread = statistics.var.sqrt().to(torch.float32) * 2.0
                inputs.append(statistics.mean.to(torch.float32) + noise * spread)
        elif name == MAP:
            assert observation.map_shape is not None
            inputs.append(torch.rand(rows, *observation.map_shape, generator=generator))
        else:
            inputs.append(_probe_mask(network.action_space, rows, generator))
    return tuple(inputs)


def _probe_mask(space: ActionSpace, rows: int, generator: torch.Generator) -> torch.Tensor:
    width = int(space.mask_width or 0)
    mask = torch.rand(rows, width, generator=generator) < 0.7
    groups = [width] if space.nvec is None else list(space.nvec)
    start = 0
    for size in groups:  # one legal choice at least: the first, where none was drawn
        block = mask[:, start : start + size]
        block[~block.any(dim=1), 0] = True
        start += size
    return mask


@contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Silence torch's deprecation notices of the exporters used here (see the module doc)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*will be removed")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        yield


def _onnx_bytes(
    folder: Path,
    policy: GreedyPolicy,
    probe: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    metadata: Mapping[str, Any],
) -> bytes:
    import onnx

    axes: dict[str, dict[int, str]] = {name: {0: "N"} for name in (*names, ACTIONS)}
    with tempfile.TemporaryDirectory(prefix="townlet-export-") as scratch:
        staged = Path(scratch) / "policy.onnx"
        try:
            with _quiet_deprecations(), torch.no_grad():
                torch.onnx.export(
                    policy,
                    probe,
                    staged,
                    input_names=list(names),
                    output_names=[ACTIONS],
                    dynamic_axes=axes,
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
        except Exception as exc:  # any converter failure: say which, and the way around it
            raise ExportError(
                f"{folder}: torch {torch.__version__} could not convert this policy to ONNX "
                f"({type(exc).__name__}: {exc}); try --format torchscript"
            ) from exc
        model = onnx.load(str(staged))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
    return bytes(model.SerializeToString())


def _run_onnx(data: bytes, names: tuple[str, ...], probe: tuple[torch.Tensor, ...]) -> np.ndarray:
    import onnxruntime  # type: ignore[import-untyped]

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(names, probe, strict=True)}
    result: np.ndarray = session.run([ACTIONS], feeds)[0]
    return result


def _torchscript_bytes(
    folder: Path, policy: GreedyPolicy, probe: tuple[torch.Tensor, ...], metadata: Mapping[str, Any]
) -> bytes:
    buffer = io.BytesIO()
    try:
        with _quiet_deprecations(), torch.no_grad():
            traced = torch.jit.trace(policy, probe, check_trace=False)  # type: ignore[no-untyped-call]
            torch.jit.save(
                traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)}
            )
    except Exception as exc:
        raise ExportError(
            f"{folder}: torch {torch.__version__} could not trace this policy to TorchScript "
            f"({type(exc).__name__}: {exc}); try --format onnx"
        ) from exc
    return buffer.getvalue()


def _run_torchscript(data: bytes, probe: tuple[torch.Tensor, ...]) -> np.ndarray:
    with _quiet_deprecations():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-untyped-call]
    with torch.no_grad():
        result: np.ndarray = loaded(*probe).numpy()
    return result


def _reference_actions(
    network: PolicyNetwork,
    mapping: ActionMapping,
    names: tuple[str, ...],
    probe: tuple[torch.Tensor, ...],
) -> np.ndarray:
    """The checkpoint's own greedy actions on the probe: `TorchPolicy`'s, which `townlet
    evaluate` takes (the env mapping in NumPy, independently of `GreedyPolicy`'s)."""
    named = {name: tensor.numpy() for name, tensor in zip(names, probe, strict=True)}
    rows = len(probe[0])
    observation = {
        FEATURES: named.get(FEATURES, np.zeros((rows, 0), dtype=np.float32)),
        **({MAP: named[MAP]} if MAP in named else {}),
    }
    with np.errstate(invalid="ignore"):  # squashing computes unbounded dimensions, unused
        output = TorchPolicy(network, mapping=mapping)(observation, named.get(ACTION_MASK))
    return output.actions


def _check_reproduces(
    folder: Path, fmt: ExportFormat, space: ActionSpace, expected: np.ndarray, found: np.ndarray
) -> None:
    if found.shape == expected.shape and found.dtype == expected.dtype:
        if space.kind == BOX:
            same = np.allclose(found, expected, rtol=0.0, atol=BOX_TOLERANCE)
        else:
            same = bool(np.array_equal(found, expected))
        if same:
            return
        rows = int(np.any((found != expected).reshape(len(found), -1), axis=1).sum())
        detail = f"{rows} of {len(found)} probe observations got other actions"
    else:
        detail = (
            f"it returned {found.dtype} {found.shape}, the policy {expected.dtype} {expected.shape}"
        )
    raise ExportError(
        f"{folder}: the {fmt} export does not reproduce the policy ({detail}); nothing was "
        "written. Please report this with the checkpoint"
    )
