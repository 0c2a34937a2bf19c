"""The machine's load while a run takes its wall time: the 1-minute load average sampled in the background.

A wall time measured beside other work says little about the run itself (on 2 cores at load 10, one thread gets a
fifth of a core), so `paperzoo reproduce` records the load next to its wall time. Where the platform has no load
average (Windows has no `os.getloadavg`), the run records none and says "not recorded".
"""

from __future__ import annotations

import os
import threading


def load_now() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds while open (`with LoadSampler() as load:`), and once
    when it opens and once when it closes; `summary()` -> {"mean", "max", "samples", "cores"}, or None where the
    platform has no load average."""

    def __init__(self, every: float = 30.0):
        if every <= 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="load-sampler", daemon=True)

    def _sample(self) -> None:
        load = load_now()
        if load is not None:
            self.samples.append(load)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> LoadSampler:
        self._sample()
        if self.samples:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2),
                "samples": len(self.samples), "cores": os.cpu_count()}
