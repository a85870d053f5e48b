"""Worker threads that handle whole hypotheses side by side on the CPU, one torch thread each.

Stage 2's tensors are too small for torch's intra-op threads to help on a small CPU (two intra-op threads
were slower than one on the quick start, and collapsed 3.4x beside one busy process; docs/benchmarks.md),
while its K hypotheses are independent graphs once the guidance loss's gradient on each render is known; the
export's hypotheses are independent outright. Both map their per-hypothesis work over these threads. (Stage 1
does not: its samples are many enough for torch's two intra-op threads to give 1.56x on one batched graph, and two
half-size stages on two threads were only 5 % faster than that; docs/benchmarks.md.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import torch


def auto_workers(requested: int, device: torch.device | str, hypotheses: int) -> int:
    """Threads for the hypotheses' own work: ``requested`` when > 0; otherwise one per usable CPU core
    (at most one per hypothesis) on the CPU, and 1 on an accelerator, where the device does the work."""
    if requested > 0:
        return min(requested, hypotheses)
    if torch.device(device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, hypotheses))


class HypothesisThreads:
    """``map(fn, items)`` on ``workers`` threads with one torch thread each (inline when ``workers`` is 1)."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = max(1, int(workers))
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    def map(self, fn: Callable, items: Iterable) -> list:
        items = list(items)
        if self.workers == 1 or len(items) == 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name,
                                            initializer=torch.set_num_threads, initargs=(1,))
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        """Stop the threads (a later ``map`` starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            # The workers' set_num_threads(1) also set torch's process-wide default that new threads start
            # from; put back the calling thread's own count.
            torch.set_num_threads(torch.get_num_threads())
