"""Wall time and peak memory of one benchmark run, measured in-process."""

from __future__ import annotations

import os
import resource
import threading
import time

import torch


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; elsewhere the lifetime peak as a fallback)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager: peak RSS while inside (sampled every ``interval`` s by a daemon thread), RSS at
    entry, and the CUDA allocator's peak where CUDA is in use. Sizes in MiB after exit."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.baseline_mib = 0.0
        self.peak_mib = 0.0
        self.cuda_peak_mib: float | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        start = current_rss_bytes()
        self._peak = start
        self.baseline_mib = start / 2**20
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, current_rss_bytes())
        self.peak_mib = self._peak / 2**20
        if torch.cuda.is_available():
            self.cuda_peak_mib = torch.cuda.max_memory_allocated() / 2**20


class Stopwatch:
    """Named wall-clock intervals: ``with watch("stage1"): ...``; ``watch.seconds`` maps names to seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        watch = self

        class _Interval:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                watch.seconds[name] = watch.seconds.get(name, 0.0) + time.perf_counter() - self.start

        return _Interval()
