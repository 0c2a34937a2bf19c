"""Metric logging for rank 0: a `MetricsLogger` keeps every row (`TrainResult.history`) and hands each one to its
writers, objects with `write(step, split, values)` and `close()` (the `MetricWriter` protocol).

With a run folder the logger writes JSON lines (`metrics.jsonl`, one row per log or eval, `JsonlWriter`), a CSV
written from them at the end (`metrics.csv`), and TensorBoard when it is installed (`TensorBoardWriter`).
`Trainer(..., writers=[...])` adds writers of one's own; `WandbWriter` sends the rows to Weights & Biases when the
`wandb` package is installed (paperzoo does not depend on it). A resumed run keeps the rows up to its checkpoint;
metrics.jsonl's rewrite on resume and metrics.csv are written atomically (a kill mid-write leaves the previous file).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Protocol

from paperzoo.engine.checkpoint import atomic_write
from paperzoo.errors import ConfigError, DataError


class MetricWriter(Protocol):
    """Where logged metrics go. `write` is called on rank 0 with each row as it is logged: the optimizer `step`, the
    `split` ("train": a log step's training metrics averaged since the last log; "eval": an evaluation's) and the
    `values` (name -> float); `close` once when the run ends, however it ends."""

    def write(self, step: int, split: str, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


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


class JsonlWriter:
    """Appends each row to `path` as one JSON line `{"step", "split", **values}`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, "split": split, **values}) + "\n")

    def close(self) -> None:
        pass


class TensorBoardWriter:
    """Each value as a TensorBoard scalar `split/name` at `step`, in event files under `folder`; needs the
    `tensorboard` package (`TensorBoardWriter.available()`)."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.summary = SummaryWriter(str(folder))

    @staticmethod
    def available() -> bool:
        try:
            import torch.utils.tensorboard  # noqa: F401  (raises ImportError without the tensorboard package)
        except ImportError:
            return False
        return True

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.summary.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        self.summary.close()


class WandbWriter:
    """Each row to a Weights & Biases run, as `{"split/name": value}` at `step`. The run starts at the first row
    (so only rank 0, the one that writes, creates it) with `wandb.init(**init)` (`project=`, `name=`, `config=`, ...)
    and finishes when the training ends. Needs the `wandb` package, which paperzoo does not install."""

    def __init__(self, **init: Any):
        try:
            import wandb
        except ImportError:
            raise ConfigError("WandbWriter needs the wandb package, which paperzoo does not install: `pip install "
                              "wandb`, or leave WandbWriter out of Trainer(writers=...)") from None
        self.wandb, self.init, self.run = wandb, init, None

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if self.run is None:
            self.run = self.wandb.init(**self.init)
        self.run.log({f"{split}/{name}": value for name, value in values.items()}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class MetricsLogger:
    """Every logged row (`rows`, `series`) and the writers that receive them: with `out_dir`, metrics.jsonl (after
    the rows up to `resume_step` that a resumed run keeps), metrics.csv at `close` and TensorBoard when installed;
    then `writers`, in order. Without `out_dir` and `writers` it only keeps the rows."""

    def __init__(self, out_dir: Path | None, resume_step: int = 0, writers: list[MetricWriter] = ()):
        self.rows: list[dict] = []
        self.out_dir = out_dir
        self.writers: list[MetricWriter] = []
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            jsonl = out_dir / "metrics.jsonl"
            if jsonl.exists():
                # a resumed run forgets what the killed run logged after its last checkpoint
                self.rows = [r for r in read_rows(jsonl) if r["step"] <= resume_step]
                # atomically: a kill mid-rewrite must not lose the rows before the checkpoint
                atomic_write(jsonl, "".join(json.dumps(r) + "\n" for r in self.rows).encode())
            self.writers.append(JsonlWriter(jsonl))
            if TensorBoardWriter.available():
                self.writers.append(TensorBoardWriter(out_dir / "tensorboard"))
        self.writers.extend(writers)

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        self.rows.append({"step": step, "split": split, **values})
        for writer in self.writers:
            writer.write(step, split, values)

    def close(self) -> None:
        if self.out_dir is not None:
            columns = ["step", "split"] + sorted({k for r in self.rows for k in r} - {"step", "split"})
            text = io.StringIO(newline="")
            table = csv.DictWriter(text, fieldnames=columns)
            table.writeheader()
            table.writerows(self.rows)
            atomic_write(self.out_dir / "metrics.csv", text.getvalue().encode())
        for writer in self.writers:
            writer.close()

    def has_row(self, step: int, split: str) -> bool:
        return any(r["step"] == step and r["split"] == split for r in self.rows)

    def series(self, split: str, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, for plots."""
        points = [(r["step"], r[name]) for r in self.rows if r["split"] == split and name in r]
        return [s for s, _ in points], [v for _, v in points]
