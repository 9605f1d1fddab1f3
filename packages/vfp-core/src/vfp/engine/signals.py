"""Graceful stops: SIGINT and SIGTERM ask the loop to finish its step, checkpoint and exit.

The first signal sets a flag that the loop reads after each optimizer step. The same signal again
within a grace period is ignored (``torchrun`` forwards the terminal's Ctrl-C to workers that got it
already); later, it stops the process at once.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Final

__all__ = ["EXIT_CODES", "StopRequest"]

EXIT_CODES: Final = {signal.SIGINT: 130, signal.SIGTERM: 143}
REPEAT_GRACE_SECONDS: Final = 2.0


class StopRequest:
    """Installs handlers for SIGINT and SIGTERM while active (main thread only)."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._received_at = 0.0
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, 1) if self.signal is not None else 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.signal is None:
            self.signal = signal.Signals(signum)
            self._received_at = now
            return
        if now - self._received_at < REPEAT_GRACE_SECONDS:
            return
        raise KeyboardInterrupt(f"stopped at once by a second {signal.Signals(signum).name}")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
