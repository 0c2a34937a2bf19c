"""The one format of the speed/memory benchmarks in benchmarks/, and the runner behind `paperzoo bench`.

A benchmark compares variants (ours and a reference) measured side by side: one repeat runs every variant once, in
alternating order, so drift on a shared machine hits them alike; the ratio is taken per repeat and reported as its
median with the interquartile range over repeats. A goal has a direction (">= 1.5" or "<= 1.03"); the row says
`met` when the whole range satisfies it, `missed` when none of it does and `undecided` when the range straddles it.

Peak memory is the peak a variant's work adds to what its process holds just before the work: on CUDA,
`torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`; on a CPU, the peak resident set (VmHWM, reset
through /proc/self/clear_refs) of a fresh process that runs only that variant, so memory another variant freed to
the allocator cannot hide it.

Every benchmark prints its rows as a table and appends them as JSON lines to `--results FILE`; `paperzoo bench`
runs each script in its own process and ends with one table of every goal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from paperzoo.engine.dry_run import dry_run_steps

SCHEMA = 1
MEMORY_UNAVAILABLE = "skipped: peak resident memory needs Linux /proc"


@dataclass(frozen=True)
class Goal:
    direction: str  # ">=" or "<="
    threshold: float

    def __post_init__(self):
        if self.direction not in (">=", "<="):
            raise ValueError(f"a goal's direction is '>=' or '<=', got {self.direction!r}")

    def __str__(self) -> str:
        return f"{self.direction} {self.threshold:g}x"

    def judge(self, low: float, high: float) -> str:
        holds = (lambda r: r >= self.threshold) if self.direction == ">=" else (lambda r: r <= self.threshold)
        if holds(low) and holds(high):
            return "met"
        if not holds(low) and not holds(high):
            return "missed"
        return "undecided"


def arguments(parser: argparse.ArgumentParser, repeats: int, device: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark takes: --repeats, --smoke, --results, --threads (and --device where CUDA runs)."""
    parser.add_argument("--repeats", type=int, default=repeats, help=f"interleaved repeats (default {repeats})")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: checks that it runs")
    parser.add_argument("--results", help="append the rows as JSON lines to this file")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    if device:
        parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # child mode: peak memory of this one variant
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.smoke:
        args.repeats = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def interleaved(measures: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """{variant: [value of each repeat]}: every variant once per repeat, the order reversed every other repeat,
    after `warmup` unrecorded rounds (a dry run: its cap of repeats, no warm-up)."""
    names = list(measures)
    values: dict[str, list[float]] = {name: [] for name in names}
    if dry_run_steps(repeats) < repeats:
        repeats, warmup = dry_run_steps(repeats), 0
    for round_ in range(warmup + repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            value = measures[name]()
            if round_ >= warmup:
                values[name].append(value)
    return values


def seconds_of(fn: Callable[[], object], device: torch.device | str = "cpu", calls: int = 1) -> Callable[[], float]:
    """A measure: the seconds per call of `fn`, over `calls` calls (CUDA synchronised at both ends)."""
    cuda = torch.device(device).type == "cuda"

    def measure() -> float:
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / calls

    return measure


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile); a single value is its own range."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q1, q3


def row(benchmark: str, name: str, compared: str, ratios: list[float] | None, goal: Goal | None, device: str,
        values: dict[str, float] | None = None, status: str | None = None) -> dict:
    """One comparison: `ratios` per repeat (None with a `status` such as 'skipped: ...'); `values` holds the
    variants' own medians (ms/step, images/s, MiB) for the reader."""
    if ratios is None and status is None:
        raise ValueError("a row without ratios needs a status that says why")
    median = low = high = None
    if ratios:
        median, low, high = spread(ratios)
        status = status or (goal.judge(low, high) if goal else "no goal")
    return {"benchmark": benchmark, "name": name, "compared": compared, "ratio": median, "low": low, "high": high,
            "repeats": len(ratios or []), "goal": str(goal) if goal else None, "status": status,
            "values": {k: round(v, 4) for k, v in (values or {}).items()}, "device": str(device),
            "threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 2)}


def paired(numerator: list[float], denominator: list[float]) -> list[float]:
    """The per-repeat ratios numerator[i] / denominator[i]."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def medians(values: dict[str, list[float]], unit: str, scale: float = 1.0) -> dict[str, float]:
    """{"<variant> <unit>": scale x median over repeats}, the absolute numbers shown beside a ratio."""
    return {f"{name} {unit}": scale * statistics.median(v) for name, v in values.items()}


def ratio_text(r: dict) -> str:
    if r["ratio"] is None:
        return "-"
    if r["repeats"] == 1:
        return f"{r['ratio']:.3g}x"
    return f"{r['ratio']:.3g}x [{r['low']:.3g}, {r['high']:.3g}]"


def table(rows: list[dict], values: bool = True) -> str:
    """Plain-text table: name, ratio (median [IQR] over repeats), goal, status (and the variants' values)."""
    header = ["benchmark", "comparison", "ratio (median [IQR])", "n", "goal", "status"] + (["values"] if values else [])
    lines = [[r["benchmark"], r["name"], ratio_text(r), str(r["repeats"]), r["goal"] or "-", r["status"]]
             + ([", ".join(f"{k} {v:.4g}" for k, v in r["values"].items())] if values else []) for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *lines])


def report(rows: list[dict], results: str | None) -> None:
    """Print the benchmark's table and append its rows to the results file."""
    print(table(rows))
    if results:
        with open(results, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


# --- peak memory ---------------------------------------------------------------------------------------------

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_mib(work: Callable[[], object], device: torch.device | str = "cpu") -> float | None:
    """The peak memory `work()` adds to what this process holds just before it (MiB); None where the OS cannot
    say (no /proc). On a CPU call it in a fresh process (see `fresh_process_peak_mib`)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        work()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set (VmHWM) to the current one (Linux >= 4.0)
        before = _status_kib("VmRSS")
    except OSError:
        return None
    work()
    return (_status_kib("VmHWM") - before) / 1024


def child_reply(value) -> None:
    """What a child started by `fresh_process_peak_mib` prints last: one JSON line."""
    print(json.dumps({"peak_mib": value}), flush=True)


def fresh_process_peak_mib(script: str, variant: str, forwarded: list[str]) -> float | None:
    """Run `script --memory-of variant` in a new process (which measures with `peak_mib` and calls `child_reply`)."""
    done = subprocess.run([sys.executable, script, *forwarded, "--memory-of", variant], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory of {variant!r} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def peaks_mib(script: str, variants: list[str], forwarded: list[str], device: torch.device,
              work: Callable[[str], Callable[[], object]]) -> dict[str, float | None]:
    """{variant: peak MiB}: in this process on CUDA, a fresh process per variant on a CPU. `work(variant)` does
    the variant's setup and returns the work to measure."""
    if device.type == "cuda":
        return {v: peak_mib(work(v), device) for v in variants}
    return {v: fresh_process_peak_mib(script, v, forwarded) for v in variants}


def forwarded_options(args: argparse.Namespace, *names: str) -> list[str]:
    """The command-line options a child needs to rebuild the same variant (--smoke, --device, --threads, ...)."""
    out = []
    for name in names:
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value not in (None, False):
            out += [flag, *map(str, value if isinstance(value, list) else [value])]
    return out


# --- the runner behind `paperzoo bench` -------------------------------------------------------------------------

def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "cuda": torch.cuda.get_device_name() if cuda else None,
            "load_before": [round(x, 2) for x in os.getloadavg()]}


def discover(folder: Path) -> dict[str, Path]:
    """{name: script} of the benchmarks in `folder` (files starting with `_` are helpers, not benchmarks)."""
    return {s.stem: s for s in sorted(folder.glob("*.py")) if not s.name.startswith("_")}


def run_script(script: Path, forwarded: list[str], timeout_s: float | None = None) -> tuple[list[dict], dict]:
    """Run one benchmark in its own process: (its rows, {exit, seconds}). A run that fails or outlives
    `timeout_s` (exit 124) ends with an `error` row."""
    print(f"== {script.stem}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "rows.jsonl"
        started = time.monotonic()
        try:
            code = subprocess.run([sys.executable, str(script), *forwarded, "--results", str(results)],
                                  timeout=timeout_s, check=False).returncode
        except subprocess.TimeoutExpired:
            code = 124
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    if code != 0:
        why = f"timed out after {timeout_s:.0f} s" if code == 124 else f"exit code {code}"
        rows.append(row(script.stem, "(run)", "the benchmark script", None, None, "-", status=f"error: {why}"))
    return rows, {"exit": code, "seconds": round(time.monotonic() - started, 1)}


def run_scripts(scripts: list[Path], forwarded: list[str]) -> tuple[list[dict], dict[str, dict]]:
    """Run each script in its own process, in order: (all rows, {name: {exit, seconds}}); a failed one does not
    stop the others."""
    rows, runs = [], {}
    for script in scripts:
        own, runs[script.stem] = run_script(script, forwarded)
        rows += own
    return rows, runs


def results_file(out: str | None, overwrite: bool = False) -> Path:
    """Where `paperzoo bench` writes, checked before any benchmark runs: a new runs/bench-<time>[-N].json by default;
    a given file that exists is refused unless `overwrite`, a folder always, and an unwritable place at once."""
    from paperzoo.errors import UserError

    if out is None:
        stem, n = f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}", 1
        path = Path(f"{stem}.json")
        while path.exists():
            n += 1
            path = Path(f"{stem}-{n}.json")
    else:
        path = Path(out)
    if path.is_dir():
        raise UserError(f"--out {path} is a folder; bench writes one results file (e.g. --out {path}/bench.json)")
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it, or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.write-test-{os.getpid()}")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); choose another --out") from None
    return path


def write_results(path: Path, rows: list[dict], runs: dict, env: dict, argv: list[str]) -> None:
    """The results file, written atomically (a kill mid-write leaves the previous file or none)."""
    env = {**env, "load_after": [round(x, 2) for x in os.getloadavg()]}
    data = {"schema": SCHEMA, "command": " ".join(["paperzoo", "bench", *argv]), "environment": env, "runs": runs,
            "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def markdown(data: dict) -> str:
    """The goals table of a results file written by `paperzoo bench`, for the README."""
    env = data["environment"]
    where = f"CUDA ({env['cuda']})" if env["cuda"] else f"{env['cpu_count']}-core CPU"
    lines = [(f"From `docs/results/bench.json` (`{data['command']}`; {where}, torch {env['torch']}, load average "
              f"{env['load_before'][0]:g} before and {env['load_after'][0]:g} after). Ratio: median over interleaved "
              "repeats, [interquartile range]; a goal is met or missed only when the whole range is on one side."), "",
             "| benchmark | comparison | what is compared | ratio | repeats | goal | status | threads |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        status = r["status"] if r["status"] in ("met", "no goal") else f"**{r['status']}**"
        lines.append(f"| `{r['benchmark']}` | {r['name']} | {r['compared'].replace('|', '/')} | {ratio_text(r)} | "
                     f"{r['repeats']} | {r['goal'] or '-'} | {status} | {r['threads']} |")
    return "\n".join(lines)
