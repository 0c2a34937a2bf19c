"""Where `train`, `reproduce` and `analyze-vit` write, chosen so that nothing is overwritten without being asked.

A default folder is new on every run, runs/<kind>-<time>[-N], created here so that two runs started in the same
second get two folders. Under torchrun every rank, and every worker that an elastic restart starts again, must write
to one folder, so there it is named by the rendezvous id (TORCHELASTIC_RUN_ID; torchrun draws one for single-node
jobs); a multi-node job without `--rdzv-id` has none and must pass `--out`.

`resumed_config` continues a training run from its own config.json: overrides may change only the settings that
do not change what was trained (more steps, logging, checkpoint cadence), and saying which is refused.

Only our own files: each command records the files it writes into its folder in a manifest (`.paperzoo-files.json`,
with the command's name), and `--overwrite` removes exactly those (for a folder written before manifests: the files
a command writes, by name), never a folder that still holds anything. A folder that holds another run's files, of
any command, is refused unless `--overwrite`. While a command writes into a folder it holds an exclusive lock on
`.paperzoo.lock` there (released by the system when the process ends, however it ends), so a second command on the
same folder is refused at once instead of mixing its files with the first one's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from paperzoo import config
from paperzoo.errors import ConfigError, UserError

RUNS = Path("runs")
MANIFEST = ".paperzoo-files.json"  # the files a command wrote into its folder: what `--overwrite` may remove
LOCK = ".paperzoo.lock"  # held (flock) by the command writing into the folder
# what each command writes into its folder, by name (globs allowed): how a folder written before manifests is
# recognised, and what `--overwrite` removes there
WRITES = {
    "train": ("config.json", "metrics.jsonl", "metrics.csv", "checkpoints/last.safetensors",
              "checkpoints/best.safetensors", "checkpoints/step-*.safetensors", "tensorboard/events.out.tfevents.*"),
    "reproduce": ("results.json", "report.md", "report.html", "figures/overview.png", "figures/*.*/*.png"),
    "analyze-vit": ("analysis.json", "report.html", "norm_histograms.png", "outlier_fraction.png", "outlier_maps.png",
                    "attention_maps.png", "probes.png", "neighbor_cos.png"),
}
HOLDS = {"train": "a training run", "reproduce": "a report", "analyze-vit": "an analysis"}
# the file of each command's own that says which command wrote a folder without a manifest
MARKERS = {"results.json": "reproduce", "analysis.json": "analyze-vit", "config.json": "train",
           "metrics.jsonl": "train", "checkpoints/last.safetensors": "train"}
TRAIN_RUN_FILES = WRITES["train"]
# settings that a resumed run may change: they do not change the model, the data order or the optimizer
MAY_CHANGE_ON_RESUME = ("train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
                        "train.keep_checkpoint_every",
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


def writable_folder(folder: Path) -> Path:
    """`folder`, created if needed; one that cannot be written (a file, a read-only disk, no permission) is a
    `UserError` now rather than after the work is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file, not a folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {folder} ({e.strerror or e}); choose another --out") from None
    return folder


def output_folder(out: str | None, kind: str, overwrite: bool = False) -> Path:
    """Where the command `kind` ("reproduce", "analyze-vit") writes, checked before it starts and locked while it
    runs (until `release`): without `out` a new runs/<kind>-<time>[-N]; a given folder that holds the output of any
    command is refused unless `overwrite` (then that output's files are removed, and only those); an unwritable one,
    or one another command is writing into, is refused at once."""
    folder = new_folder(kind) if out is None else writable_folder(Path(out))
    if not overwrite:
        claim(folder, kind, overwrite)  # refused before a lock file is made; looked at again under the lock
    acquire(folder, kind)
    try:
        claim(folder, kind, overwrite)
    except BaseException:
        release(folder)
        raise
    return folder


def claim(folder: Path, kind: str, overwrite: bool) -> None:
    """Make `folder` the command `kind`'s: refuse it when it holds another run's output unless `overwrite`, then
    remove that output's own files. Call with the folder's lock held."""
    held, files = held_output(folder)
    if not files:
        return
    if not overwrite:
        by = "" if held in (None, kind) else f", written by `paperzoo {held}`"
        what = HOLDS.get(held, "files paperzoo writes")
        shown = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
        raise UserError(f"{folder} already holds {what} ({shown}{by}); pass --overwrite to replace it, or choose "
                        "another --out")
    remove_output(folder)


# --- manifests: the files a command wrote -------------------------------------------------------------------------

def _relative(folder: Path, path: str | Path) -> str | None:
    """`path` (absolute, relative to the working folder and inside `folder`, or relative to `folder`) as a manifest
    entry relative to `folder`; None for a path outside it."""
    base = os.path.abspath(folder)
    for candidate in (os.path.abspath(path), os.path.abspath(os.path.join(base, path))):
        rel = os.path.relpath(candidate, base)
        if rel != "." and not rel.startswith(".." + os.sep) and rel != ".." and not os.path.isabs(rel):
            return Path(rel).as_posix()
    return None


def read_manifest(folder: Path) -> dict | None:
    """{"command": ..., "files": [...]} of the folder's manifest; None without one (or an unreadable one). Entries
    that point outside the folder are dropped."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    files = [f for f in data["files"] if isinstance(f, str) and not os.path.isabs(f)
             and _relative(folder, Path(folder) / f) == Path(f).as_posix()]
    return {"command": data.get("command") if isinstance(data.get("command"), str) else None, "files": files}


def record(folder: Path, command: str, *paths: str | Path) -> None:
    """Add `paths` (see `_relative`) to the files `command` wrote into `folder`; the manifest is replaced
    atomically."""
    folder = Path(folder)
    manifest = read_manifest(folder) or {"command": command, "files": []}
    new = [r for r in dict.fromkeys(_relative(folder, p) for p in paths) if r and r not in manifest["files"]]
    if not new and manifest["command"] == command and (folder / MANIFEST).exists():
        return
    text = json.dumps({"command": command, "files": [*manifest["files"], *new]}, indent=1) + "\n"
    tmp = folder / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def _named(folder: Path, names: tuple[str, ...]) -> list[str]:
    found = []
    for name in names:
        matches = sorted(folder.glob(name)) if "*" in name else [folder / name]
        found += [p.relative_to(folder).as_posix() for p in matches if p.is_file() or p.is_symlink()]
    return found


def held_output(folder: Path) -> tuple[str | None, list[str]]:
    """(the command whose output `folder` holds, its files there): from the manifest, else the files any command
    writes, by name; (None, []) for a new or empty folder, or one of the user's files only."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is not None:
        files = [f for f in manifest["files"] if (folder / f).is_file() or (folder / f).is_symlink()]
        if files:
            return manifest["command"], files
    files = list(dict.fromkeys(f for names in WRITES.values() for f in _named(folder, names)))
    held = next((MARKERS[f] for f in MARKERS if f in files), None)
    return held, files


def held_train_files(folder: Path) -> list[str]:
    """The files of an earlier run (of any command) in `folder` (empty for a new or empty folder)."""
    return held_output(Path(folder))[1]


def remove_output(folder: Path) -> list[str]:
    """Remove the output files of the run `folder` holds (`held_output`), the temporary files of their killed
    writes and the manifest, then the subfolders that this left empty; never anything else. Returns the removed
    files."""
    folder = Path(folder)
    _, files = held_output(folder)
    removed = []
    for name in files:
        path = folder / name
        leftovers = list(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.is_dir() else []
        for p in [path, *leftovers]:
            if p.is_file() or p.is_symlink():
                p.unlink()
                removed.append(p.relative_to(folder).as_posix())
        parent = path.parent
        while parent != folder and folder in parent.parents:
            try:
                parent.rmdir()  # only an empty one
            except OSError:
                break
            parent = parent.parent
    (folder / MANIFEST).unlink(missing_ok=True)
    return removed


# --- locks: one command per folder at a time -----------------------------------------------------------------------

_HELD: dict[str, list] = {}  # folder -> [open lock file, count] held by this process


def acquire(folder: Path, command: str) -> None:
    """Take the folder's lock for this process (re-entrant); another process holding it is a `UserError` at once.
    No-op where the system has no `flock` (Windows)."""
    try:
        import fcntl
    except ImportError:
        return
    key = os.path.abspath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        handle = open(Path(folder) / LOCK, "a+")
    except OSError as e:
        raise UserError(f"cannot write to {folder} ({e.strerror or e}); choose another --out") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{folder} is in use by another paperzoo run ({holder}); wait for it to finish, or choose "
                        "another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: paperzoo {command}" + (" " + " ".join(sys.argv[2:]) if sys.argv[2:] else ""))
    handle.flush()
    _HELD[key] = [handle, 1]


def release(folder: Path) -> None:
    """Give the folder's lock back (when this process took it as often as it gives it back)."""
    key = os.path.abspath(folder)
    if key not in _HELD:
        return
    _HELD[key][1] -= 1
    if _HELD[key][1] == 0:
        _HELD.pop(key)[0].close()  # closing the file releases the flock


@contextlib.contextmanager
def locked(folder: Path, command: str):
    """The folder's lock held for the `with` block (see `acquire`)."""
    acquire(folder, command)
    try:
        yield Path(folder)
    finally:
        release(folder)


def torchrun_folder(kind: str) -> Path:
    """The folder every rank and every elastic restart of one torchrun job agrees on, without talking."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if run_id in ("", "none"):
        raise UserError("under torchrun without a rendezvous id every rank would pick its own run folder: pass "
                        "--out (a folder that all nodes share), or give torchrun --rdzv-id")
    return RUNS / f"{kind}-torchrun-{run_id}"


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


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
