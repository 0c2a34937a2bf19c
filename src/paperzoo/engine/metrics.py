"""Metric logging for rank 0: JSON lines (one row per log or eval), a CSV written from them, and TensorBoard
when it is installed."""

from __future__ import annotations

import csv
import json
from pathlib import Path


class MetricsLogger:
    def __init__(self, out_dir: Path | None, resume_step: int = 0):
        self.rows: list[dict] = []
        self.out_dir = out_dir
        self.writer = None
        if out_dir is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = out_dir / "metrics.jsonl"
        if self.jsonl.exists():
            # a resumed run forgets what the killed run logged after its last checkpoint
            kept = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]
            self.rows = [r for r in kept if r["step"] <= resume_step]
            self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            self.writer = None

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        row = {"step": step, "split": split, **values}
        self.rows.append(row)
        if self.out_dir is None:
            return
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.out_dir is None:
            return
        columns = ["step", "split"] + sorted({k for r in self.rows for k in r} - {"step", "split"})
        with open(self.out_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.writer is not None:
            self.writer.close()

    def series(self, split: str, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, for plots."""
        points = [(r["step"], r[name]) for r in self.rows if r["split"] == split and name in r]
        return [s for s, _ in points], [v for _, v in points]
