"""Metric logging for rank 0: JSON lines (one row per log or eval), a CSV written from them, and TensorBoard
when it is installed. A resumed run keeps the rows up to its checkpoint; metrics.jsonl's rewrite on resume and
metrics.csv are written atomically (a kill mid-write leaves the previous file)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from paperzoo.engine.checkpoint import atomic_write
from paperzoo.errors import DataError


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl. A last line cut short by a kill mid-write is dropped (the run resumes from a
    checkpoint taken before it); any other unreadable line is an error naming it."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e}); move it away to resume without the old metrics") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or "split" not in row:
            if number == len(lines):
                break
            raise DataError(f"{path}, line {number}, is not a metrics row (a JSON object with 'step' and 'split'): "
                            f"{line[:80]!r}; fix or delete that line to resume")
        rows.append(row)
    return rows


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
            self.rows = [r for r in read_rows(self.jsonl) if r["step"] <= resume_step]
            # atomically: a kill mid-rewrite must not lose the rows before the checkpoint
            atomic_write(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.rows).encode())
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
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.out_dir / "metrics.csv", text.getvalue().encode())
        if self.writer is not None:
            self.writer.close()

    def has_row(self, step: int, split: str) -> bool:
        return any(r["step"] == step and r["split"] == split for r in self.rows)

    def series(self, split: str, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, for plots."""
        points = [(r["step"], r[name]) for r in self.rows if r["split"] == split and name in r]
        return [s for s, _ in points], [v for _, v in points]
