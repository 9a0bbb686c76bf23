"""Save and load checkpoints (format in `townlet_core.checkpoints`), atomically.

A checkpoint folder is written under a temporary name and renamed into place, so a crash
leaves either no checkpoint or a complete one. Loading trusts nothing it reads: it verifies
the weights' SHA-256, checks the network `checkpoint.json` declares against the tensor
shapes in the weights file's header before building anything (an edited width cannot make
it allocate more than the file holds), refuses NaN or infinite weights by name, and says
exactly what differs when a checkpoint does not fit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from townlet_core.__about__ import __version__
from townlet_core.atomic import atomic_write_json
from townlet_core.checkpoints import (
    FIRST_FORMAT_VERSION,
    FORMAT_VERSION,
    INFO_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    CheckpointInfo,
    ObservationSpec,
    Producer,
    check_compatible,
    checkpoint_dir,
    read_info,
)
from townlet_core.data.action_space import DISCRETE, ActionSpace
from townlet_core.errors import DataError
from townlet_core.nn.network import PolicyNetwork
from townlet_core.runtime.run_dir import utc_now


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def save_checkpoint(
    path: Path,
    network: PolicyNetwork,
    *,
    strategy: str,
    strategy_version: str,
    seed: int,
    metrics: Mapping[str, float | None] | None = None,
    action_lookup: Mapping[str, int] | None = None,
    env_id: str | None = None,
    training_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    action_mapping: str = "clip",
) -> CheckpointInfo:
    """Write `network` (and optionally a resumable training state) as a checkpoint folder.

    `path` must not exist yet: checkpoints are never overwritten in place. The action space
    comes from the network; `action_mapping` says how its Box actions reach the env. A
    checkpoint that needs nothing of format version 2 is written as version 1.
    """
    if path.exists():
        raise DataError(
            f"{path}: a checkpoint already exists here; checkpoints are never overwritten"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
        weights = staging / WEIGHTS_FILE
        save_file(tensors, str(weights))
        _fsync(weights)
        if training_state is not None:
            torch.save(dict(training_state), staging / STATE_FILE)
            _fsync(staging / STATE_FILE)
        space = network.action_space
        discrete = space.kind == DISCRETE
        newer = not discrete or action_mapping != "clip" or network.spec.uses_version_2()
        info = CheckpointInfo(
            format_version=FORMAT_VERSION if newer else FIRST_FORMAT_VERSION,
            network=network.spec,
            observation=network.observation,
            action_dim=network.action_dim,
            action_space=None if discrete else space.as_dict(),
            action_mapping="squash" if action_mapping == "squash" else "clip",
            action_lookup=dict(action_lookup) if action_lookup else None,
            env_id=env_id,
            producer=Producer(
                strategy=strategy,
                strategy_version=strategy_version,
                townlet_core=__version__,
                torch=torch.__version__,
            ),
            seed=seed,
            metrics=dict(metrics or {}),
            created_at=utc_now().isoformat(),
            weights_sha256=_sha256(weights),
            parameters=sum(t.numel() for t in tensors.values()),
            has_training_state=training_state is not None,
            extra=dict(extra or {}),
        )
        atomic_write_json(staging / INFO_FILE, info.model_dump(mode="json"))
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return info


def load_checkpoint(
    path: Path | str,
    *,
    device: torch.device | str = "cpu",
    observation: ObservationSpec | None = None,
    action_dim: int | None = None,
    action_space: ActionSpace | None = None,
) -> tuple[PolicyNetwork, CheckpointInfo]:
    """Rebuild the network of a checkpoint and load its weights.

    With `observation` and `action_dim` (and optionally `action_space`), first check that
    the checkpoint serves them, and list every difference if it does not.
    """
    folder = checkpoint_dir(path)
    info = read_info(folder)
    if observation is not None and action_dim is not None:
        check_compatible(folder, info, observation, action_dim, action_space)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise DataError(f"{folder}: checkpoint has no {WEIGHTS_FILE}; re-create the checkpoint")
    if _sha256(weights) != info.weights_sha256:
        raise DataError(
            f"{weights}: does not match the checksum in {INFO_FILE} (corrupt, truncated or "
            "replaced); re-create the checkpoint"
        )
    _check_declared_network(folder, info, _header_shapes(weights))
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{weights}: unreadable weights ({exc}); re-create the checkpoint") from exc
    _check_finite(weights, tensors)
    network = PolicyNetwork(info.network, info.observation, info.action_dim, info.space())
    network.load_state_dict(tensors)
    return network.to(device), info


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from the safetensors header alone (no tensor data is read)."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = handle.keys()  # a safetensors handle is not iterable
            return {name: tuple(handle.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{weights}: unreadable weights ({exc}); re-create the checkpoint") from exc


def _declared_shapes(info: CheckpointInfo) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the network `info` declares, built on the "meta" device: shapes
    without storage, so even an absurd declared width allocates nothing."""
    with torch.device("meta"):
        network = PolicyNetwork(info.network, info.observation, info.action_dim, info.space())
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def _check_declared_network(
    folder: Path, info: CheckpointInfo, found: Mapping[str, tuple[int, ...]]
) -> None:
    """DataError listing the differences between the declared network and the weights."""
    expected = _declared_shapes(info)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = sorted(
        f"{k} {found[k]} vs {expected[k]}"
        for k in set(expected) & set(found)
        if found[k] != expected[k]
    )
    if not (missing or unexpected or wrong_shape):
        return
    detail = "; ".join(
        part
        for part in (
            f"missing {', '.join(missing[:5])}" if missing else "",
            f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
            f"shapes differ: {', '.join(wrong_shape[:5])}" if wrong_shape else "",
        )
        if part
    )
    raise DataError(
        f"{folder}: weights do not match the network described in {INFO_FILE} ({detail})"
    )


def _check_finite(weights: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights, naming the tensor: such a policy acts at random and
    would write NaN log-probabilities into every dataset it captures."""
    for name in sorted(tensors):
        tensor = tensors[name]
        if not tensor.is_floating_point():
            continue
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise DataError(
                f"{weights}: tensor {name} holds {bad} NaN or infinite value(s); the policy is "
                "unusable (training diverged or the file was edited): use an earlier checkpoint"
            )


def load_training_state(path: Path | str) -> dict[str, Any]:
    """The training state saved beside the weights (for resuming), or DataError."""
    state_path = checkpoint_dir(path) / STATE_FILE
    if not state_path.exists():
        raise DataError(
            f"{checkpoint_dir(path)}: checkpoint holds no training state to resume from"
        )
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{state_path}: unreadable training state ({exc})") from exc
    if not isinstance(state, dict):
        raise DataError(f"{state_path}: training state must be a mapping")
    return state
