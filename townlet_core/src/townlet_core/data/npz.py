"""Reading and writing one Townlet sample: `NAME.npz` plus the `NAME.json` metadata sidecar.

Writes are atomic (temporary file in the same folder, fsync, rename), so an interrupted
writer leaves either the previous file or the complete new one, never half of one.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from townlet_core.atomic import FILE_MODE, atomic_write_json
from townlet_core.data.limits import check_array_bytes, read_bounded_text, require_regular_file
from townlet_core.data.trajectory import Trajectory, build_trajectory
from townlet_core.errors import DataError, TownletError

ArrayInfo = tuple[tuple[int, ...], np.dtype[Any]]


def default_meta_path(sample: Path) -> Path:
    return sample.with_suffix(".json")


def read_metadata(path: Path | None) -> dict[str, Any]:
    """The sidecar's mapping, or {} when there is none (bounded: see `limits`)."""
    if path is None or not (path.exists() or path.is_symlink()):
        return {}
    try:
        data = json.loads(read_bounded_text(path, "metadata sidecar"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: unreadable sample metadata ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: sample metadata must be a JSON object")
    return data


_CHUNK = 1 << 16


_MAGIC = b"\x93NUMPY"
_HEADER_FIELDS = re.compile(
    r"'descr':\s*'(?P<descr>[^']+)'.*'fortran_order':\s*(?P<fortran>True|False).*"
    r"'shape':\s*\((?P<shape>[\d,\s]*)\)",
    re.DOTALL,
)


#: Longest `.npy` header read (numpy itself refuses more than 10,000 bytes by default).
MAX_HEADER_BYTES = 65_536


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` member's header declares, and how many bytes the header itself takes."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]
    size: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _header(handle: IO[bytes]) -> NpyHeader:
    """Shape, Fortran order and dtype from a `.npy` header (never more than its header).

    Plain headers (every array Townlet writes) are matched directly; anything else goes
    through `ast.literal_eval` as NumPy does. Parsing with `ast` allocates far more than a
    small trajectory's data, which would dominate a streaming loader's footprint.
    """
    prefix = handle.read(8)
    if len(prefix) < 8 or not prefix.startswith(_MAGIC):
        raise ValueError("not a .npy member (bad magic bytes)")
    major = prefix[6]
    size_bytes = 2 if major == 1 else 4
    length = int.from_bytes(handle.read(size_bytes), "little")
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"a .npy header of {length} bytes (at most {MAX_HEADER_BYTES} are read)")
    text = handle.read(length).decode("latin1" if major < 3 else "utf8")
    size = 8 + size_bytes + length
    try:
        match = _HEADER_FIELDS.search(text)
        if match:
            shape = tuple(int(d) for d in match["shape"].replace(" ", "").split(",") if d)
            return NpyHeader(shape, match["fortran"] == "True", np.dtype(match["descr"]), size)
        fields = ast.literal_eval(text)
        shape = tuple(int(d) for d in fields["shape"])
        return NpyHeader(shape, bool(fields["fortran_order"]), np.dtype(fields["descr"]), size)
    except (SyntaxError, TypeError, KeyError, RecursionError, MemoryError) as exc:
        raise ValueError(f"unreadable .npy header ({type(exc).__name__}: {exc})") from exc


def _checked_header(handle: IO[bytes], path: Path, info: zipfile.ZipInfo) -> tuple[str, NpyHeader]:
    """Member `info`'s array name and header, checked before anything is allocated: its
    declared size within `TOWNLET_MAX_ARRAY_BYTES`, and equal to what the member holds (a
    header claiming more data than its member has is a lie, or a truncation)."""
    name = info.filename[: -len(".npy")]
    header = _header(handle)
    if header.dtype.hasobject:
        raise ValueError(f"'{name}' holds Python objects, which are never loaded")
    declared = check_array_bytes(path, name, header.shape, header.dtype.itemsize)
    if header.size + declared != info.file_size:
        raise DataError(
            f"{path}: array '{name}' declares shape {header.shape} {header.dtype} "
            f"({declared} bytes) but its member holds {info.file_size - header.size} bytes "
            "of data; the file is corrupt or forged: re-create it or remove it from the manifest"
        )
    return name, header


def _read_member(handle: IO[bytes], member: str, header: NpyHeader) -> np.ndarray:
    """One `.npy` member (its header already read), read straight into its final array in
    small chunks.

    `np.load` first reads a member into a bytes object and then copies it, doubling peak
    memory; streaming a large dataset one trajectory at a time should not pay that.
    """
    array = np.empty(header.shape, dtype=header.dtype, order="F" if header.fortran else "C")
    flat: Any = array.reshape(-1, order="A")  # a view: reading into it fills `array`
    view = memoryview(flat).cast("B") if array.size else memoryview(b"")
    filled = 0
    while filled < len(view):
        read = handle.readinto(view[filled : filled + _CHUNK])  # type: ignore[attr-defined]
        if not read:
            raise EOFError(f"'{member}' ends after {filled} of {len(view)} bytes")
        filled += read
    return array


class _StoredMember:
    """Reads one uncompressed zip member straight from the file, checking size and CRC.

    `ZipFile.open` reads through an intermediate bytes object per call; for stored
    (uncompressed) members we can `readinto` the destination array directly instead.
    """

    def __init__(self, raw: IO[bytes], info: zipfile.ZipInfo) -> None:
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for member {info.filename!r}")
        name_length = int.from_bytes(local[26:28], "little")
        extra_length = int.from_bytes(local[28:30], "little")
        raw.seek(info.header_offset + 30 + name_length + extra_length)
        self._raw = raw
        self._info = info
        self._left = info.file_size
        self._crc = 0

    def read(self, size: int) -> bytes:
        data = self._raw.read(min(size, self._left))
        self._left -= len(data)
        self._crc = zlib.crc32(data, self._crc)
        return data

    def readinto(self, view: memoryview) -> int:
        view = view[: self._left]
        count = self._raw.readinto(view)  # type: ignore[attr-defined]
        count = int(count or 0)
        self._left -= count
        self._crc = zlib.crc32(view[:count], self._crc)
        return count

    def verify(self) -> None:
        if self._left or self._crc != self._info.CRC:
            raise zipfile.BadZipFile(f"member {self._info.filename!r} fails its CRC check")


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz`, loaded; corrupt, truncated, oversized or non-regular files
    raise DataError (each array's declared size is checked before it is allocated)."""
    if not (path.exists() or path.is_symlink()):
        raise DataError(f"{path}: sample file does not exist")
    require_regular_file(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        # Unbuffered: arrays are read straight into place, and a file buffer would cost
        # more than a small trajectory's data when streaming.
        with path.open("rb", buffering=0) as raw, zipfile.ZipFile(raw) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                if info.compress_type == zipfile.ZIP_STORED:
                    member = _StoredMember(raw, info)
                    name, header = _checked_header(member, path, info)  # type: ignore[arg-type]
                    arrays[name] = _read_member(member, info.filename, header)  # type: ignore[arg-type]
                    member.verify()
                else:
                    with archive.open(info) as handle:
                        name, header = _checked_header(handle, path, info)
                        arrays[name] = _read_member(handle, info.filename, header)
    except TownletError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); the file is corrupt or "
            "truncated: re-create it or remove it from the manifest"
        ) from exc
    return arrays


def read_array_info(path: Path) -> dict[str, ArrayInfo]:
    """Shapes and dtypes of an `.npz`'s arrays, read from the headers alone (no array data),
    with the same size checks as `read_arrays`."""
    if not (path.exists() or path.is_symlink()):
        raise DataError(f"{path}: sample file does not exist")
    require_regular_file(path)
    info: dict[str, ArrayInfo] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    name, header = _checked_header(handle, path, member)
                info[name] = (header.shape, header.dtype)
    except TownletError:
        raise
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
        os.fchmod(fd, FILE_MODE)
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
