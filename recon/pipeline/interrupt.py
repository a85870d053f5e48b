"""Stop long loops cleanly on Ctrl-C: finish the current step, checkpoint, then raise.

A SIGINT in the middle of ``loss.backward()`` or ``optimizer.step()`` would leave parameters half
updated; the handler only records the request, and the loop checks it at step boundaries. A second
Ctrl-C falls back to the default behaviour (immediate KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class StopRequest:
    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested (call it after a checkpoint)."""
        if self.requested:
            raise KeyboardInterrupt


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[StopRequest]:
    """Inside the block, the first SIGINT sets ``stop.requested`` instead of raising."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        stop.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C until the block ends, then raise it as KeyboardInterrupt.

    For imports of libraries that wrap their own optional imports in ``except BaseException`` (trimesh
    does): a KeyboardInterrupt raised inside them is swallowed, the command goes on as if no Ctrl-C came,
    and the module being imported (scipy.ndimage, seen) is left half initialised for the rest of the run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
