"""Where `train`, `reproduce` and `analyze-vit` write, chosen so that nothing is overwritten without being asked.

A default folder is new on every run, runs/<kind>-<time>[-N], created here so that two runs started in the same
second get two folders. Under torchrun every rank, and every worker that an elastic restart starts again, must write
to one folder, so there it is named by the rendezvous id (TORCHELASTIC_RUN_ID; torchrun draws one for single-node
jobs); a multi-node job without `--rdzv-id` has none and must pass `--out`.

`resumed_config` continues a training run from its own config.json: overrides may change only the settings that
do not change what was trained (more steps, logging, checkpoint cadence), and saying which is refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from paperzoo import config
from paperzoo.errors import ConfigError, UserError

RUNS = Path("runs")
# what a training run writes into its folder; `--overwrite` removes exactly these
TRAIN_RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "checkpoints", "tensorboard")
# settings that a resumed run may change: they do not change the model, the data order or the optimizer
MAY_CHANGE_ON_RESUME = ("train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
                        "train.progress", "train.num_workers", "train.dist_timeout_s")


def new_folder(kind: str) -> Path:
    """A folder that did not exist before this call: runs/<kind>-<time>, or -2, -3, ... within the same second."""
    stem = RUNS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in itertools.count(1):
        folder = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def output_folder(out: str | None, kind: str, marker: str, holds: str, overwrite: bool = False) -> Path:
    """Where a run writes, checked before it starts: without `out` a new runs/<kind>-<time>[-N]; a given folder in
    which the file `marker` says it `holds` an earlier output is refused unless `overwrite`, and an unwritable one
    is refused at once."""
    if out is None:
        return new_folder(kind)
    folder = Path(out)
    if (folder / marker).exists() and not overwrite:
        raise UserError(f"{folder} already holds {holds} ({marker}); pass --overwrite to replace it, or choose "
                        "another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {folder} ({e.strerror or e}); choose another --out") from None
    return folder


def torchrun_folder(kind: str) -> Path:
    """The folder every rank and every elastic restart of one torchrun job agrees on, without talking."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if run_id in ("", "none"):
        raise UserError("under torchrun without a rendezvous id every rank would pick its own run folder: pass "
                        "--out (a folder that all nodes share), or give torchrun --rdzv-id")
    return RUNS / f"{kind}-torchrun-{run_id}"


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def held_train_files(folder: Path) -> list[str]:
    """The training-run files already in `folder` (empty for a new or empty folder)."""
    return [name for name in TRAIN_RUN_FILES if (Path(folder) / name).exists()]


def _flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(_flat(value, prefix + f.name + "."))
        else:
            flat[prefix + f.name] = value
    return flat


def read_run_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: {path} does not exist; pass the --out of the run to resume")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"--resume: {path} is not valid JSON ({e}); the run's configuration is lost, start a new "
                        "run with another --out") from None
    if not isinstance(saved, dict):
        raise UserError(f"--resume: {path} must hold a JSON object, not {type(saved).__name__}")
    return saved


def resumed_config(config_class: type, method: str, folder: Path, overrides: list[str]) -> Any:
    """The run's own config.json with `overrides` applied, refusing any that would change what was trained."""
    saved = read_run_config(folder)
    if saved.get("method") != method:
        raise UserError(f"--resume: {folder} is a run of {saved.get('method')!r}, not {method!r}; pass the method "
                        "that run trained")
    try:
        original = config.from_dict(config_class, {k: v for k, v in saved.items() if k != "method"})
    except (ConfigError, TypeError) as e:
        raise UserError(f"--resume: {folder}/config.json does not match {method}'s configuration ({e})") from None
    changed = config.apply_overrides(original, overrides)
    before, after = _flat(original), _flat(changed)
    refused = [f"{key}={before[key]!r} -> {after[key]!r}" for key in after
               if after[key] != before[key] and key not in MAY_CHANGE_ON_RESUME]
    if refused:
        raise ConfigError(f"--resume continues {folder} with its own config.json and cannot change "
                          f"{', '.join(refused)}; only {', '.join(MAY_CHANGE_ON_RESUME)} may change. To train "
                          "with other settings, start a new run with another --out")
    return changed
