"""Graceful shutdown: SIGTERM/SIGINT set a flag the service loop checks between batches."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignal:
    """Set by SIGTERM or SIGINT (or by ``set()``); loops finish their batch, commit, then exit."""

    def __init__(self, install_handlers: bool = True) -> None:
        self._event = threading.Event()
        if install_handlers and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._event.set()

    def set(self) -> None:
        """Ask the loop to stop."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on a stop; returns whether a stop was asked for."""
        return self._event.wait(seconds)
