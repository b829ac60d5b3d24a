"""Peak memory a call allocates, sampled from /proc/self/status while it runs (Linux).

Anonymous memory (RssAnon) is what the process itself holds: tensors, arrays, buffers. Pages of a memory-mapped
gallery are file cache (RssFile), which the kernel can drop at any time, so they are reported apart and never counted
as the call's own memory. Sampling every few milliseconds catches any buffer that lives through a block computation (a
thread sampling much faster competes with the measured work for the CPUs).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STATUS = Path("/proc/self/status")


def resident_kib() -> dict[str, int]:
    """Current RssAnon and RssFile of this process in KiB."""
    fields = {}
    for line in STATUS.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


@dataclass
class PeakMemory:
    """Anonymous memory at the start and its peak while sampling; the peak of file-backed resident pages."""

    start_anon_bytes: int = 0
    peak_anon_bytes: int = 0
    peak_file_bytes: int = 0

    @property
    def added_anon_bytes(self) -> int:
        """Peak anonymous memory above what the process held before the call."""
        return self.peak_anon_bytes - self.start_anon_bytes

    def sample(self) -> None:
        now = resident_kib()
        self.peak_anon_bytes = max(self.peak_anon_bytes, now["RssAnon"] * 1024)
        self.peak_file_bytes = max(self.peak_file_bytes, now["RssFile"] * 1024)


@contextlib.contextmanager
def tracking_peak_memory(interval_s: float = 0.005) -> Iterator[PeakMemory]:
    """Sample this process's resident memory every `interval_s` seconds inside the block; yields the running peak."""
    if not STATUS.is_file():
        raise RuntimeError("Peak memory is read from /proc/self/status, which this system does not have (Linux only).")
    peak = PeakMemory(start_anon_bytes=resident_kib()["RssAnon"] * 1024)
    peak.sample()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(interval_s):
            peak.sample()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak.sample()
