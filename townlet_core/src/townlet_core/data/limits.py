"""Bounds on what reading a dataset may cost, so a tiny hostile input cannot exhaust memory.

A dataset is data someone else may have written: a manifest entry can name `/dev/zero`, an
`.npz` of a megabyte can declare (or really decompress to) terabytes, a sidecar can be a
gigabyte of JSON. Every file the data layer reads must be a regular file (after following
symlinks), every array's declared size is checked against a limit before anything is
allocated, and JSON/YAML documents are read only up to a size limit. The limits are generous
defaults, raised with environment variables (read at each use, so a test or a long-lived
process can change them):

| variable | default | bounds |
| --- | --- | --- |
| `TOWNLET_MAX_ARRAY_BYTES` | 2 GiB | one array of one `.npz` sample, as its header declares it |
| `TOWNLET_MAX_JSON_BYTES` | 64 MiB | one manifest, metrics file or metadata sidecar |
| `TOWNLET_MAX_ACTIONS` | 65,536 | a dataset's number of actions (declared or largest id + 1) |
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from townlet_core.errors import ConfigError, DataError

ARRAY_BYTES_VARIABLE = "TOWNLET_MAX_ARRAY_BYTES"
JSON_BYTES_VARIABLE = "TOWNLET_MAX_JSON_BYTES"
ACTIONS_VARIABLE = "TOWNLET_MAX_ACTIONS"
DEFAULT_MAX_ARRAY_BYTES = 2 * 2**30
DEFAULT_MAX_JSON_BYTES = 64 * 2**20
#: Far above any discrete action space a policy head is trained for; an id of 2**40 would
#: otherwise size a 281 TB output layer.
DEFAULT_MAX_ACTIONS = 65_536
#: Bytes read at a time from a document that grew while it was read.
_PIECE = 1 << 20


def _limit(variable: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    text = (os.environ if environ is None else environ).get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{variable}={text!r}: expected a positive whole number (the default is {default})"
        )
    return value


def max_array_bytes() -> int:
    """The most bytes one array of a sample may declare (`TOWNLET_MAX_ARRAY_BYTES`)."""
    return _limit(ARRAY_BYTES_VARIABLE, DEFAULT_MAX_ARRAY_BYTES)


def max_json_bytes() -> int:
    """The largest manifest or sidecar document read (`TOWNLET_MAX_JSON_BYTES`)."""
    return _limit(JSON_BYTES_VARIABLE, DEFAULT_MAX_JSON_BYTES)


def max_actions() -> int:
    """The largest number of actions a dataset may have (`TOWNLET_MAX_ACTIONS`)."""
    return _limit(ACTIONS_VARIABLE, DEFAULT_MAX_ACTIONS)


def require_regular_file(path: Path, what: str | None = None) -> os.stat_result:
    """The file's status; a DataError unless it is a regular file once symlinks are followed.

    Devices (`/dev/zero`), pipes and sockets never end or never start, so reading one would
    hang or fill memory. `what` (default: the path) starts the message, to name the manifest
    entry that pointed here.
    """
    try:
        status = path.stat()
    except FileNotFoundError as exc:
        raise DataError(f"{what or path}: {path} does not exist") from exc
    except OSError as exc:
        raise DataError(f"{what or path}: cannot read {path} ({exc})") from exc
    if not stat.S_ISREG(status.st_mode):
        resolved = os.path.realpath(path)
        shown = f"{path} (which is {resolved})" if resolved != os.fspath(path) else str(path)
        raise DataError(
            f"{what or path}: {shown} is not a regular file (a device, pipe, socket or "
            "folder); a dataset lists only .npz samples and .json metadata files"
        )
    return status


def read_bounded_text(path: Path, kind: str) -> str:
    """A regular file's UTF-8 text, refused above `TOWNLET_MAX_JSON_BYTES` before reading.

    The size is checked from the file's status and again while reading (a file that grows
    meanwhile is still cut off at the limit). `kind` names the document in messages.
    """
    limit = max_json_bytes()
    status = require_regular_file(path)
    if status.st_size > limit:
        raise DataError(_too_large(path, kind, status.st_size, limit))
    with path.open("rb") as handle:
        # read(n) allocates n bytes up front: ask for the size the file has, not the limit
        data = handle.read(status.st_size + 1)
        while status.st_size < len(data) <= limit:  # it grew since: go on, a piece at a time
            more = handle.read(min(_PIECE, limit + 1 - len(data)))
            if not more:
                break
            data += more
    if len(data) > limit:
        raise DataError(_too_large(path, kind, len(data), limit))
    return data.decode("utf-8")


def _too_large(path: Path, kind: str, size: int, limit: int) -> str:
    return (
        f"{path}: {kind} of {size} bytes is larger than the {limit}-byte limit; if the file "
        f"is genuine, raise {JSON_BYTES_VARIABLE} (e.g. {JSON_BYTES_VARIABLE}={2 * size})"
    )


def check_array_bytes(path: Path, name: str, shape: tuple[int, ...], itemsize: int) -> int:
    """The bytes array `name` of `path` declares; a DataError above the limit.

    Called with the shape and dtype read from the `.npy` header, before any allocation.
    """
    if any(d < 0 for d in shape):
        raise DataError(f"{path}: array '{name}' declares a negative dimension {shape}")
    declared = itemsize
    for dim in shape:
        declared *= dim
    limit = max_array_bytes()
    if declared > limit:
        raise DataError(
            f"{path}: array '{name}' declares shape {shape} ({declared} bytes), above the "
            f"{limit}-byte limit on one array; nothing was loaded. If the file is genuine, "
            f"raise {ARRAY_BYTES_VARIABLE} (e.g. {ARRAY_BYTES_VARIABLE}={declared}); "
            "otherwise remove it from the dataset"
        )
    return declared


def check_action_count(where: str, count: int, how: str) -> None:
    """A DataError when a dataset's number of actions is beyond `TOWNLET_MAX_ACTIONS`."""
    limit = max_actions()
    if count > limit:
        raise DataError(
            f"{where}: {how} means {count} actions, above the limit of {limit}; a policy "
            f"head that size cannot be trained. Fix the action ids, or raise "
            f"{ACTIONS_VARIABLE} if the action space really is that large"
        )
