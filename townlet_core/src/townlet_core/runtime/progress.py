"""The live progress bar of captures, BC epochs, PPO updates and anneal stages.

Drawn by tqdm (ADR 0014) on a terminal, silent when quiet or when the stream is not a
terminal. tqdm is imported only when a bar is actually drawn, so `townlet --help`,
`--version`, `strategies list` and every quiet or piped run never load it.

A bar shows the count (of its total), the rate, the elapsed time and the ETA, then the
strategy's own figures (`update(1, ret=..., loss=...)`). A figure passed as None or NaN is
not known yet: the bar keeps showing the latest known value of it (or nothing), never
`ret=None`.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tqdm import tqdm

#: Bars open now (with a tqdm bar drawn), so a log line can be written above them.
_open: list[Progress] = []


class Progress:
    """`update()` as work advances, `close()` at the end (or use it as a context manager).

    `unit` names what is counted (episode, epoch, update); `initial` is work done before this
    process started (a resumed run), shown in the count but not in the rate or the ETA.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        enabled: bool,
        stream: IO[str] | None = None,
        unit: str = "it",
        initial: int = 0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.initial = initial
        self.count = initial
        #: The latest known value of each figure (unknown ones are left out).
        self.postfix: dict[str, Any] = {}
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._bar: tqdm[Any] | None = None
        if enabled:  # drawn at once: the bar's clock starts with the work
            self._open_bar()

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self.postfix.update((k, v) for k, v in postfix.items() if _known(v))
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix_text(), refresh=False)
            self._bar.update(n)

    def render(self) -> str:
        """The current line as the bar draws it, without control characters (tests read it)."""
        if self._bar is not None:
            return str(self._bar)
        from tqdm import tqdm

        return tqdm.format_meter(
            self.count,
            self.total,  # type: ignore[arg-type]  # None is documented (no total); stubs lag
            time.monotonic() - self._started,
            prefix=self.desc,
            unit=self.unit,
            initial=self.initial,
            postfix=self._postfix_text() or None,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix_text(), refresh=False)
            self._bar.close()  # draws the final state and leaves it on its own line
            _open.remove(self)
            self._bar = None
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _postfix_text(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())

    def _open_bar(self) -> tqdm[Any]:
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total,
            desc=self.desc,
            unit=self.unit,
            initial=self.initial,
            file=self._stream,
            dynamic_ncols=True,
            mininterval=0.1,
            smoothing=0.1,
            leave=True,
        )
        _open.append(self)
        return self._bar


class ProgressFactory(Protocol):
    """`context.services.progress(total, desc, unit=..., initial=...)`: a bar for one loop
    (None total: count without an ETA). Silent when quiet or not on a terminal."""

    def __call__(
        self, total: int | None, desc: str, *, unit: str = "it", initial: int = 0
    ) -> Progress: ...


def labelled(factory: ProgressFactory, label: str) -> ProgressFactory:
    """`factory` with every bar's description prefixed by `label` (a composed stage's name)."""

    def make(total: int | None, desc: str, *, unit: str = "it", initial: int = 0) -> Progress:
        return factory(total, f"{label}: {desc}", unit=unit, initial=initial)

    return make


def write_line(message: str, stream: IO[str] | None = None) -> None:
    """Print one log line; above the open bars, which are drawn again below it."""
    stream = stream or sys.stderr
    if _open:
        from tqdm import tqdm

        tqdm.write(message, file=stream)
    else:
        print(message, file=stream)


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def progress_wanted(quiet: bool, stream: IO[str] | None = None) -> bool:
    """Progress is drawn on a terminal unless the user asked for quiet."""
    stream = stream or sys.stderr
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())
