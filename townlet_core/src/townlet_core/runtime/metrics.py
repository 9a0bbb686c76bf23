"""`MetricsSink`: one JSON object per line, appended, flushed per line, optionally rotated.

Rotation follows the original Townlet trainer: after `rotate_after` lines the current file is
closed and writing continues in `NAME.1`, then `NAME.2`, and so on. Reopening a sink (a
resumed run) continues in the last file at its line count, so nothing is overwritten.
Non-finite floats are written as `null`: strict JSON that every reader accepts.

Each line is written with one call and flushed, so only a stop in the middle of that write
(a full disk, a power loss) can leave a torn last line; reopening the sink drops such a
line with a warning naming the file, and readers skip it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from townlet_core.atomic import atomic_write_text
from townlet_core.errors import DataError


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
        log: Callable[[str], None] | None = None,
        tap: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        """`annotate(record)` returns fields added to every record (a composing strategy's
        view of its stage, e.g. anneal's `anneal_*` fields and guardrail flags); `log`
        hears about a torn last line dropped from an existing file; `tap(index, record)`
        gets each record as written, once written (the run's trackers: `tracking`)."""
        if rotate_after is not None and rotate_after < 1:
            raise ValueError("rotate_after must be at least 1")
        self.path = path
        self.rotate_after = rotate_after
        self._index = 0
        while rotated_path(path, self._index + 1).exists():
            self._index += 1
        current = rotated_path(path, self._index)
        if current.exists():
            dropped = drop_torn_tail(current)
            if dropped and log is not None:
                log(
                    f"townlet: warning: dropped a torn last line ({dropped} bytes) from "
                    f"{current}; the run stopped while writing it"
                )
        self._lines = _count_lines(current) if current.exists() else 0
        self._handle: IO[bytes] | None = None
        self.records_written = 0
        self._annotate = annotate
        self._tap = tap

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
        written_record = _json_safe(record)
        line = (json.dumps(written_record, allow_nan=False) + "\n").encode("utf-8")
        current = rotated_path(self.path, self._index)
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = current.open("ab", buffering=0)
            written = self._handle.write(line)
            while written is not None and written < len(line):  # a short write: finish it
                written += self._handle.write(line[written:]) or 0
        except OSError as exc:
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(current)) from exc
            raise
        if self._tap is not None:
            self._tap(self.records_written, written_record)
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


def _torn_tail_size(path: Path) -> int:
    """Bytes at the end of `path` that are not a complete JSON line (0 when none): text after
    the last newline, or a last line that does not parse (zero bytes from a power loss)."""
    size = path.stat().st_size
    block = min(size, 1 << 20)
    with path.open("rb") as handle:
        handle.seek(size - block)
        tail = handle.read(block)
    complete = tail.endswith(b"\n")
    cut = tail.rfind(b"\n", 0, len(tail) - 1 if complete else len(tail))
    if cut == -1 and block < size:  # a last line longer than 1 MiB: leave it alone
        return 0
    last = tail[cut + 1 :]
    if not complete:
        return len(last)
    try:
        json.loads(last)
    except ValueError:
        return len(last)
    return 0


def drop_torn_tail(path: Path) -> int:
    """Cut a torn last line off `path` (in place); returns how many bytes were dropped."""
    torn = _torn_tail_size(path)
    if torn:
        os.truncate(path, path.stat().st_size - torn)
    return torn


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics file and its rotations, in the order they were written.

    A torn last line (a run stopped while writing it) is skipped; any other line that is
    not JSON is a DataError naming the file and line."""
    records: list[dict[str, Any]] = []
    index = 0
    while (current := rotated_path(path, index)).exists():
        last_file = not rotated_path(path, index + 1).exists()
        with current.open("rb") as handle:
            lines = handle.read().split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                records.append(json.loads(raw))
            except ValueError as exc:
                if last_file and number == len(complete) and not tail:
                    break  # a torn last line
                raise DataError(
                    f"{current}: line {number} is not JSON ({exc}); the metrics file is damaged"
                ) from exc
        if tail.strip() and not last_file:
            raise DataError(f"{current}: the last line is incomplete; the metrics file is damaged")
        index += 1
    return records


class DiscardingSink(MetricsSink):
    """The metrics sink of a rank other than 0 in a data-parallel run: it takes every record
    and writes none (rank 0 writes the run's metrics, aggregated over the ranks), so a
    strategy logs the same way on every rank. A composing strategy's `annotate` still sees
    every record, as on rank 0 (anneal's guardrails read the lines through it)."""

    def __init__(
        self, path: Path, annotate: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None
    ) -> None:  # reads nothing, unlike its base
        self.path = path
        self.rotate_after = None
        self._index = 0
        self._lines = 0
        self._handle = None
        self.records_written = 0
        self._annotate = annotate

    @property
    def files(self) -> list[Path]:
        return []

    def log(self, record: Mapping[str, Any]) -> None:
        if self._annotate is not None:
            self._annotate(dict(record))
        self.records_written += 1

    def truncate(self, keep: int) -> None:
        self.records_written = keep
