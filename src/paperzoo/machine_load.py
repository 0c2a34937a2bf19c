"""The machine's load while a run takes its wall time: the 1-minute load average sampled in the background.

A wall time measured beside other work says little about the run itself (on 2 cores at load 10, one thread gets a
fifth of a core), so `paperzoo reproduce` records the load next to its wall time.
"""

from __future__ import annotations

import os
import threading


class LoadSampler:
    """Samples `os.getloadavg()[0]` every `every` seconds while open (`with LoadSampler() as load:`), and once when
    it opens and once when it closes; `summary()` -> {"mean", "max", "samples", "cores"}."""

    def __init__(self, every: float = 30.0):
        if every <= 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="load-sampler", daemon=True)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2),
                "samples": len(self.samples), "cores": os.cpu_count()}
