"""Hold Ctrl-C and SIGTERM while a run commits its final files.

A run's last writes (result.json, the carried state, the strategy's after-commit step such
as anneal's ledger, and run.json's final state) must all happen or the run must not claim
to be finished. A signal arriving in between used to leave contradictions (a PASS counted in
the ledger for a run whose run.json said `running`; an exit code of 130 "interrupted" for a
run recorded as `succeeded`). Inside `held_interrupts()` such a signal is remembered, the
writes complete, and the caller decides what the signal means once the run is committed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

_HELD = (signal.SIGINT, signal.SIGTERM)


@dataclass
class HeldSignals:
    """The signals that arrived while held, in order."""

    received: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.received)


@contextmanager
def held_interrupts(log: Callable[[str], None]) -> Iterator[HeldSignals]:
    """Defer SIGINT and SIGTERM for the block (main thread only: elsewhere Python delivers
    no signals anyway). The previous handlers come back afterwards."""
    held = HeldSignals()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def remember(signum: int, _frame: FrameType | None) -> None:
        if not held.received:
            log("townlet: stop requested; finishing the run's final writes first")
        held.received.append(signum)

    previous = {number: signal.signal(number, remember) for number in _HELD}
    try:
        yield held
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
