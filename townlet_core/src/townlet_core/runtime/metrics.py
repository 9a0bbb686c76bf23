"""`MetricsSink`: one JSON object per line, appended, flushed per line, optionally rotated.

Rotation follows the original Townlet trainer: after `rotate_after` lines the current file is
closed and writing continues in `NAME.1`, then `NAME.2`, and so on. Reopening a sink (a
resumed run) continues in the last file at its line count, so nothing is overwritten.
Non-finite floats are written as `null`: strict JSON that every reader accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from townlet_core.atomic import atomic_write_text


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    item = getattr(value, "item", None)  # NumPy (and torch) scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _json_safe(item())
    if isinstance(value, Path):
        return str(value)
    return value


def encode_record(record: Mapping[str, Any]) -> str:
    """The exact line written for `record` (without the newline)."""
    return json.dumps(_json_safe(record), allow_nan=False)


def rotated_path(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


class MetricsSink:
    """Append metrics records to `path` as JSON lines."""

    def __init__(
        self,
        path: Path,
        *,
        rotate_after: int | None = None,
        annotate: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        """`annotate(record)` returns fields added to every record (a composing strategy's
        view of its stage, e.g. anneal's `anneal_*` fields and guardrail flags)."""
        if rotate_after is not None and rotate_after < 1:
            raise ValueError("rotate_after must be at least 1")
        self.path = path
        self.rotate_after = rotate_after
        self._index = 0
        while rotated_path(path, self._index + 1).exists():
            self._index += 1
        current = rotated_path(path, self._index)
        self._lines = _count_lines(current) if current.exists() else 0
        self._handle: IO[str] | None = None
        self.records_written = 0
        self._annotate = annotate

    @property
    def files(self) -> list[Path]:
        """Every file this sink has written so far, oldest first."""
        return [p for i in range(self._index + 1) if (p := rotated_path(self.path, i)).exists()]

    def log(self, record: Mapping[str, Any]) -> None:
        """Write one record now (the line is flushed before this returns)."""
        if self._annotate is not None:
            record = {**record, **self._annotate(dict(record))}
        if self.rotate_after is not None and self._lines >= self.rotate_after:
            self._close_handle()
            self._index += 1
            self._lines = 0
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = rotated_path(self.path, self._index).open(
                "a", encoding="utf-8", buffering=1
            )
        self._handle.write(encode_record(record) + "\n")
        self._lines += 1
        self.records_written += 1

    def truncate(self, keep: int) -> None:
        """Keep only the first `keep` records (across rotations): a resumed run rewinds the
        lines logged after its last checkpoint, so they are not written twice."""
        self._close_handle()
        records = [encode_record(r) for r in read_metrics(self.path)][:keep]
        index = 0
        while rotated_path(self.path, index).exists():
            rotated_path(self.path, index).unlink()
            index += 1
        self._index, self._lines = 0, 0
        size = self.rotate_after or max(len(records), 1)
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            atomic_write_text(
                rotated_path(self.path, start // size), "".join(f"{line}\n" for line in chunk)
            )
            self._index, self._lines = start // size, len(chunk)
        self.records_written = len(records)

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        self._close_handle()

    def __enter__(self) -> MetricsSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics file and its rotations, in the order they were written."""
    records: list[dict[str, Any]] = []
    index = 0
    while (current := rotated_path(path, index)).exists():
        with current.open(encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
        index += 1
    return records
