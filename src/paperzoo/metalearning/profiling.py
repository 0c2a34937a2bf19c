"""Cost measures for meta-training steps that do not depend on the device: the bytes of the tensors an autograd
graph keeps for its backward pass (activation memory; the same on CPU and GPU), and the median wall time."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def graph_saved_bytes(output: torch.Tensor) -> int:
    """Total size of the distinct tensors saved for backward in the graph that produced `output`."""
    seen_nodes, seen_storages, total = set(), set(), 0
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen_nodes:
            continue
        seen_nodes.add(node)
        for attr in dir(node):
            if not attr.startswith("_saved_"):
                continue
            try:
                value = getattr(node, attr)
            except RuntimeError:  # a saved tensor already freed
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if torch.is_tensor(t) and t.numel():
                    key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                    if key not in seen_storages:
                        seen_storages.add(key)
                        total += key[1]
        stack.extend(next_node for next_node, _ in node.next_functions)
    return total


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
