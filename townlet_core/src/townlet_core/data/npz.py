"""Reading and writing one Townlet sample: `NAME.npz` plus the `NAME.json` metadata sidecar.

Writes are atomic (temporary file in the same folder, fsync, rename), so an interrupted
writer leaves either the previous file or the complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.atomic import atomic_write_json
from townlet_core.data.trajectory import Trajectory, build_trajectory
from townlet_core.errors import DataError

ArrayInfo = tuple[tuple[int, ...], np.dtype[Any]]


def default_meta_path(sample: Path) -> Path:
    return sample.with_suffix(".json")


def read_metadata(path: Path | None) -> dict[str, Any]:
    """The sidecar's mapping, or {} when there is none."""
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable sample metadata ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: sample metadata must be a JSON object")
    return data


def _open_npz(path: Path) -> Any:
    if not path.exists():
        raise DataError(f"{path}: sample file does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); the file is corrupt or "
            "truncated: re-create it or remove it from the manifest"
        ) from exc


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz`, loaded; corrupt or truncated files raise DataError."""
    with _open_npz(path) as archive:
        try:
            return {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path}: array data is corrupt or truncated ({type(exc).__name__}: {exc}); "
                "re-create the file or remove it from the manifest"
            ) from exc


def read_array_info(path: Path) -> dict[str, ArrayInfo]:
    """Shapes and dtypes of an `.npz`'s arrays, read from the headers alone (no array data)."""
    info: dict[str, ArrayInfo] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _fortran, dtype = read_header(handle)
                info[member[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: sample file does not exist") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); re-create it or remove "
            "it from the manifest"
        ) from exc
    return info


def read_sample(sample: Path, meta: Path | None = None) -> Trajectory:
    """Load and validate one sample; metadata from `meta` or the `.json` beside it."""
    meta_path = meta if meta is not None else default_meta_path(sample)
    if meta is not None and not meta.exists():
        raise DataError(f"{meta}: metadata file named for {sample.name} does not exist")
    return build_trajectory(read_arrays(sample), read_metadata(meta_path), source=sample)


def write_sample(
    directory: Path, stem: str, trajectory: Trajectory, *, compress: bool = True
) -> tuple[Path, Path]:
    """Write `STEM.npz` and `STEM.json` atomically; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    sample_path = directory / f"{stem}.npz"
    meta_path = directory / f"{stem}.json"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            arrays: dict[str, Any] = trajectory.arrays()
            if compress:
                np.savez_compressed(handle, **arrays)
            else:
                np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(sample_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise
    atomic_write_json(meta_path, _json_ready(trajectory.metadata))
    return sample_path, meta_path


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
