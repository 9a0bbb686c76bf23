"""A one-line progress display for terminals; silent when quiet or not on a TTY."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """`update()` as work advances, `close()` at the end. Draws at most 10 times a second."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        enabled: bool,
        stream: IO[str] | None = None,
        width: int = 24,
    ) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self._stream = stream or sys.stderr
        self._width = width
        self._last_draw = 0.0
        self._started = time.monotonic()

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self.postfix.update(postfix)
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.count == self.total):
            self._last_draw = now
            self._draw()

    def render(self) -> str:
        """The current line, without carriage return (tests read this)."""
        parts = [self.desc]
        if self.total:
            filled = int(self._width * min(self.count, self.total) / self.total)
            bar = "#" * filled + "." * (self._width - filled)
            parts.append(f"[{bar}] {self.count}/{self.total}")
        else:
            parts.append(str(self.count))
        parts.append(f"{time.monotonic() - self._started:.1f}s")
        parts.extend(f"{k}={_fmt(v)}" for k, v in self.postfix.items())
        return " ".join(parts)

    def _draw(self) -> None:
        self._stream.write("\r\033[K" + self.render())
        self._stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def progress_wanted(quiet: bool, stream: IO[str] | None = None) -> bool:
    """Progress is drawn on a terminal unless the user asked for quiet."""
    stream = stream or sys.stderr
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())
