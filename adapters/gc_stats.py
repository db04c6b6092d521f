"""How much time the process spends in Python's cyclic garbage collector, per generation.

A worker keeps tens of thousands of workflows in its sticky cache: millions of long-lived
objects that every full collection walks. These figures show what that costs."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GcStats:
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _started: float = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info["generation"])
        self.collections[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def install(self) -> GcStats:
        gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, str]:
        return {f"gen{g}": f"{self.collections[g]} in {self.seconds[g]:.2f}s" for g in range(3)}
