"""The report of a `reproduce` run: results.json (machine-readable), report.md, and a self-contained
report.html (claims table coloured by verdict, each claim's figures inline as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
from collections import Counter
from pathlib import Path

import numpy as np
import scipy
import torch

from paperzoo.claims import VERDICTS, ClaimResult
from paperzoo.report_figures import forest_plot, seed_figure

VERDICT_COLOURS = {"reproduced": "#d6f5d6", "not_reproduced": "#fde2c8", "inconclusive": "#e3dcf7",
                   "skipped": "#e6e6e6", "error": "#f8c9c9"}
SCHEMA_VERSION = 3  # 3: claims carry kind, fingerprint, looks; summary_by_kind


def format_number(value: float | int) -> str:
    """One number as every report writes it: below 1,000, 4 significant digits (0.1 + 0.2 -> "0.3", 0.9763,
    1.987e-08); from 1,000 on, whole, with thousands separators ("4,000", "118,282", not "1.183e+05"); no "-0"."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if 1_000 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


SUB_VERDICT_DETAIL = ("preconditions", "tests")  # what a reported sub-verdict's reason already states


def _fmt(value) -> str:
    if isinstance(value, (float, int, np.number, np.bool_)):
        return format_number(value)
    if isinstance(value, dict) and {"verdict", "reason"} <= value.keys():  # a verdict reported beside the claim's
        settings = {k: v for k, v in value.items() if k not in ("verdict", "reason", *SUB_VERDICT_DETAIL)}
        return f"{_fmt(settings)} {value['verdict']}: {value['reason']}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(_fmt(v) for v in value[:8])}, ...] ({len(value)})"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(_fmt(v) for v in value)}]"
    return str(value)


def _interval_text(s: dict) -> str:
    if s["low"] is None:
        return f"{format_number(s['mean'])} ({s['n']} seed{'s' * (s['n'] > 1)})"
    return (f"{format_number(s['mean'])} [{format_number(s['low'])}, {format_number(s['high'])}] "
            f"({s['n']} seeds)")


def measured_lines(measured: dict, summary: dict | None = None) -> list[str]:
    """One `name = value` per measured quantity, per-seed quantities first as mean [95% interval] (n seeds); the
    names are those the criterion uses."""
    return ([f"{k} = {_interval_text(s)}" for k, s in (summary or {}).items()]
            + [f"{k} = {_fmt(v)}" for k, v in measured.items()])


def measured_text(measured: dict, summary: dict | None = None) -> str:
    """The measured values on one line, `; `-separated (`measured_lines`)."""
    return "; ".join(measured_lines(measured, summary))


SMOKE_NOTE = ("A smoke run checks the plumbing only: every claim's code runs end to end at a size too small to decide "
              "it, so these verdicts are not evidence for or against the papers' claims. The claims are tested by "
              "`paperzoo reproduce --preset quick` (or standard).")
DRY_RUN_NOTE = ("A dry run checks a preset's code path only: every model, data set, schedule and evaluation of the "
                "preset was built and run on one seed, but every training loop trained only its first {steps} steps "
                "after each evaluation, so these verdicts are not evidence for or against the papers' claims.")


def plumbing_note(preset: str, run: dict) -> str | None:
    """What a report says at its top when its verdicts are not evidence: a smoke run, a dry run; else None."""
    if run.get("dry_run"):
        return DRY_RUN_NOTE.format(steps=run["dry_run"])
    return SMOKE_NOTE if preset == "smoke" else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    """The BLAS torch was built with, from its build configuration (e.g. "Intel(R) oneAPI Math Kernel Library
    Version 2024.2")."""
    config = torch.__config__.show()
    for line in config.splitlines():
        if "Math Kernel Library" in line or "OpenBLAS" in line:
            return line.strip(" -").split(" for ")[0]
    return next((part.split("=")[1] for part in config.split(", ") if part.startswith("BLAS_INFO=")), "unknown")


def environment() -> dict:
    """What two reports must share for their numbers to be comparable bit for bit."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "blas": _blas(), "machine": platform.machine(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def verdict_counts(results) -> dict[str, int]:
    counts = Counter(r["verdict"] if isinstance(r, dict) else r.verdict for r in results)
    return {v: counts.get(v, 0) for v in VERDICTS}


def counts_by_kind(results) -> dict[str, dict[str, int]]:
    """Verdict counts of the empirical claims (findings of the papers) and of the checks (identities) apart."""
    kind = lambda r: r.get("kind", "empirical") if isinstance(r, dict) else r.kind  # noqa: E731
    return {k: verdict_counts([r for r in results if kind(r) == k]) for k in ("empirical", "check")}


def kind_summary(by_kind: dict[str, dict[str, int]]) -> str:
    """"empirical claims: 9 reproduced, 4 not reproduced, ...; checks: 12 passed, 0 failed" (the findings first)."""
    findings = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in by_kind["empirical"].items() if n)
    checks = by_kind["check"]
    failed = checks["not_reproduced"] + checks["error"]
    other = checks["inconclusive"] + checks["skipped"]
    tail = f", {other} not run or undecided" if other else ""
    return (f"empirical claims: {findings or 'none'}; checks: {checks['reproduced']} passed, {failed} failed"
            f"{tail}")


def _evidence_figures(results: list[ClaimResult], out_dir: Path) -> Path | None:
    """A per-seed figure for each claim decided on tests, put first among its figures; the forest plot."""
    for r in results:
        if any(len(t["per_seed"]) for t in r.tests):
            path = seed_figure(r.to_json(), out_dir / "figures" / r.id / "seeds.png")
            r.figures = [str(path), *[f for f in r.figures if f != str(path)]]
    return forest_plot([r.to_json() for r in results], out_dir / "figures" / "overview.png")


def report_folder(out: str | None, overwrite: bool = False) -> Path:
    """The folder a `reproduce` run writes to (see `run_folders.output_folder`), checked before any claim runs and
    locked until `run_folders.release(folder)`."""
    from paperzoo.run_folders import output_folder

    return output_folder(out, "reproduce", overwrite)


def _record(out_dir: Path, results: list[ClaimResult], *names: str) -> None:
    """Add the report's files and the claims' figures to the folder's manifest (what `--overwrite` removes)."""
    from paperzoo.run_folders import record

    record(out_dir, "reproduce", *names, *(f for r in results for f in r.figures))


def _write_json(path: Path, payload: dict) -> None:
    """Atomically: a crash mid-write leaves the previous file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_partial(results: list[ClaimResult], out_dir: Path, preset: str, seed: int,
                  stopped: dict | None = None) -> Path:
    """results.json with the claims finished so far (`"complete": false`), rewritten as each claim finishes, so a
    crash or a kill keeps what was measured; `write_report` replaces it with the full report. `stopped`: how a run
    stopped by a signal ended (the signal, the claims not run)."""
    path = out_dir / "results.json"
    _record(out_dir, results, "results.json")
    _write_json(path, {"schema": SCHEMA_VERSION, "complete": False, "preset": preset, "seed": seed,
                       **({"stopped": stopped} if stopped else {}),
                       "summary": verdict_counts(results), "summary_by_kind": counts_by_kind(results),
                       "claims": [r.to_json() for r in results]})
    return path


def write_report(results: list[ClaimResult], out_dir: Path, preset: str, seed: int,
                 run: dict | None = None) -> dict[str, Path]:
    """results.json, report.md and report.html of a finished run. It is `"complete": false` when a worker process
    died (`run["worker_deaths"]`): those claims were not measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _record(out_dir, results, "results.json", "report.md", "report.html", "figures/overview.png")
    overview = _evidence_figures(results, out_dir)
    _record(out_dir, results)
    counts = verdict_counts(results)
    complete = not (run or {}).get("worker_deaths")
    payload = {"schema": SCHEMA_VERSION, "complete": complete, "preset": preset, "seed": seed, "run": run or {},
               "environment": environment(), "summary": counts, "summary_by_kind": counts_by_kind(results),
               "claims": [r.to_json() for r in results]}
    paths = {"json": out_dir / "results.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    _write_json(paths["json"], payload)
    paths["md"].write_text(_markdown(results, out_dir, preset, counts, overview, plumbing_note(preset, run or {})))
    paths["html"].write_text(_html(results, preset, seed, counts, overview, payload))
    return paths


def _summary_line(counts: dict) -> str:
    return ", ".join(f"{counts.get(v, 0)} {v.replace('_', ' ')}" for v in VERDICT_COLOURS)


def worker_deaths(results: list[ClaimResult]) -> list[str]:
    """One line per paper whose worker process died: which claims it cost."""
    from paperzoo.claims import WORKER_DIED

    lost: dict[str, list[str]] = {}
    for r in results:
        if r.verdict == "error" and r.reason.startswith(WORKER_DIED):
            lost.setdefault(r.reason, []).append(r.id)
    return [f"{reason}: {len(ids)} claim(s) not measured ({', '.join(ids)})" for reason, ids in lost.items()]


def _precondition_lines(r: ClaimResult) -> list[str]:
    word = {True: "held", False: "NOT MET", None: "UNDECIDED"}
    return [f"{word[p['held']]}: {p['text']} ({p['detail']})" for p in r.preconditions]


def _markdown(results: list[ClaimResult], out_dir: Path, preset: str, counts: dict, overview: Path | None,
              note: str | None) -> str:
    lines = [f"# paperzoo report (preset `{preset}`)", "", *([f"**{note}**", ""] if note else []),
             kind_summary(counts_by_kind(results)), "",
             f"All claims: {_summary_line(counts)}", ""]
    lines += [f"**Incomplete:** {line}" for line in worker_deaths(results)] + [""] * bool(worker_deaths(results))
    if overview:
        lines += [f"![every decided test against its threshold]({os.path.relpath(overview, out_dir)})", ""]
    lines += ["| claim | verdict | paper reports | measured | criterion | s |", "|---|---|---|---|---|---|"]
    for r in results:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines.append(f"| `{r.id}` | **{r.verdict}** | {cell(r.paper_reports)} | "
                     f"{cell(measured_text(r.measured, r.summary))} | {cell(r.criterion)} | {r.seconds:.0f} |")
    for r in results:
        lines += ["", f"## {r.id}: {r.verdict}", "", f"> {r.statement}", "",
                  f"*Paper:* {r.paper} · *kind:* {r.kind} · *protocol:* `{r.fingerprint}`", "", f"*Why:* {r.reason}", ""]
        lines += [f"- {line}" for line in _precondition_lines(r)]
        if r.seeds:
            lines += ["", f"*Seeds:* {r.seeds}"]
        if len(r.planned_looks) > 1:
            lines += ["", f"*Looks:* planned {r.planned_looks} at {100 * r.confidence:.1f}% each (Pocock); taken "
                          + ", ".join(f"{look['seeds']}: {look['verdict']}" for look in r.looks)]
        if r.message:
            lines += ["```", r.message.strip(), "```", ""]
        for fig in r.figures:
            lines.append(f"![{Path(fig).name}]({os.path.relpath(fig, out_dir)})")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;
padding:0 1em}
h1{margin-bottom:.2em} .summary span{display:inline-block;padding:.25em .7em;margin-right:.4em;border-radius:1em}
table{border-collapse:collapse;width:100%;font-size:13px;margin:1em 0;table-layout:fixed}
th,td{border:1px solid #ccc;padding:.4em .6em;vertical-align:top;text-align:left;overflow-wrap:anywhere} th{background:#f4f4f4}
td.verdict{font-weight:bold;white-space:nowrap} .claim{border:1px solid #ddd;border-radius:8px;padding:.8em 1.2em;
margin:1.2em 0} .claim h3{margin:.2em 0} .figs img{max-width:48%;margin:.3em;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px} .meta{color:#666;font-size:13px}
code{font-size:13px} tr.post td{background:#eef3fb;font-weight:bold} h2{margin-top:1.6em}
.why{background:#f6f4fd;padding:.4em .6em;border-radius:4px;font-size:13px} li.unmet{color:#b03a2e;font-weight:bold}
li.held{color:#2e6b3d} .forest img{max-width:100%}
.smoke{background:#fff4c2;border:1px solid #e0c050;padding:.6em .9em;border-radius:6px;font-weight:bold}
"""


def _img(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        return f"<p class=meta>missing figure {html.escape(path)}</p>"
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(p.name)}" title="{html.escape(p.name)}" src="data:image/png;base64,{data}">'


def _post_title(claim_id: str) -> str:
    from paperzoo.catalog import ENGINE, POSTS

    module = claim_id.split(".")[0]
    for post in [ENGINE, *POSTS]:
        if post.module == module:
            return f"{post.number}. {post.title}" if post.number else post.title
    return module


def _claim_section(r: ClaimResult, colour: str) -> str:
    e = html.escape
    why = f"<p class=why><b>why {e(r.verdict.replace('_', ' '))}:</b> {e(r.reason)}</p>" if r.reason else ""
    pre = "".join(f"<li class={'held' if p['held'] else 'unmet'}>{e(line)}</li>"
                  for p, line in zip(r.preconditions, _precondition_lines(r)))
    seeds = f"; seeds {e(str(r.seeds))}" if r.seeds else ""
    if len(r.planned_looks) > 1:
        taken = ", ".join(f"{look['seeds']} seeds: {look['verdict'].replace('_', ' ')}" for look in r.looks)
        seeds += (f"; sequential looks planned at {e(str(r.planned_looks))} seeds (each at "
                  f"{100 * r.confidence:.1f}%, Pocock), taken: {e(taken)}")
    timings = f"<p class=meta><b>timings</b> (not compared between runs): {e(measured_text(r.timings))}</p>" \
        if r.timings else ""
    return (f'<div class=claim id="{e(r.id)}" style="border-left:8px solid {colour}">'
            f"<h3><code>{e(r.id)}</code>: {e(r.verdict.replace('_', ' '))} <span class=meta>({e(r.kind)}; "
            f"protocol {e(r.fingerprint)})</span></h3><p>{e(r.statement)}</p>"
            f"<p class=meta>{e(r.paper)}; paper reports: {e(r.paper_reports)}; criterion: {e(r.criterion)}; "
            f"{r.seconds:.1f} s{seeds}</p>{why}"
            + (f"<p><b>preconditions</b></p><ul>{pre}</ul>" if pre else "")
            + f"<p><b>measured:</b> {e(measured_text(r.measured, r.summary))}</p>{timings}"
            + (f"<pre>{e(r.message.strip())}</pre>" if r.message else "")
            + f'<div class=figs>{"".join(_img(f) for f in r.figures)}</div></div>')


def _environment_line(payload: dict) -> str:
    env, run = payload["environment"], payload["run"]
    parts = [f"preset <b>{html.escape(payload['preset'])}</b>", f"base seed {payload['seed']}"]
    if run:
        parts.append(f"--jobs {run.get('jobs')}, {run.get('threads')} torch threads per process, "
                     f"{run.get('wall_seconds')} s wall time" + (
                         f" at a load average of {run['load_average']['mean']} (max {run['load_average']['max']})"
                         if run.get("load_average") else ""))
    parts.append(html.escape(f"{env['cpu']} ({env['cpu_count']} cores); torch {env['torch']}, numpy {env['numpy']}, "
                             f"scipy {env['scipy']}, {env['blas']}; python {env['python']}; "
                             f"CUDA {'yes' if env['cuda'] else 'no'}"))
    return "; ".join(parts)


def _html(results: list[ClaimResult], preset: str, seed: int, counts: dict, overview: Path | None,
          payload: dict) -> str:
    e = html.escape
    badges = "".join(f'<span style="background:{c}">{counts.get(v, 0)} {v.replace("_", " ")}</span>'
                     for v, c in VERDICT_COLOURS.items())
    one_run = sum(1 for r in results if not r.tests and r.verdict in ("reproduced", "not_reproduced"))
    stopped = sum(1 for r in results if r.verdict == "inconclusive" and not r.tests)
    forest = (f"<h2>Overview: every decided test against its threshold</h2><p class=meta>One row per test of a "
              f"criterion: the dot is the measured effect, the bar its interval over seeds (95%, or a sequential "
              f"plan's level), the red dashed line the threshold fixed before the run (a bar wholly past it holds), "
              f"the grey dotted line the smallest effect of interest (a bar wholly short of it refutes); each row has "
              f"its own scale. Not shown: {one_run} claims still "
              f"decided on one run's values (no interval) and {stopped} stopped by a precondition (their sections "
              f"say which).</p><div class=forest>{_img(str(overview))}</div>" if overview else "")
    note = plumbing_note(preset, payload["run"])
    note = note and re.sub(r"`([^`]+)`", r"<code>\1</code>", e(note))
    total = sum(r.seconds for r in results)
    rows, sections, current = [], [], None
    for r in results:
        title = _post_title(r.id)
        if title != current:
            rows.append(f'<tr class=post><td colspan=6>{e(title)} <span class=meta>({e(r.paper)})</span></td></tr>')
            sections.append(f"<h2>{e(title)}</h2>")
            current = title
        colour = VERDICT_COLOURS[r.verdict]
        rows.append(
            f'<tr style="background:{colour}"><td><a href="#{e(r.id)}"><code>{e(r.id)}</code></a>'
            f"<br>{e(r.statement)}</td><td class=verdict>{e(r.verdict.replace('_', ' '))}"
            f"{'<br><span class=meta>check</span>' if r.kind == 'check' else ''}</td>"
            f"<td>{e(r.paper_reports)}</td><td>{'<br>'.join(map(e, measured_lines(r.measured, r.summary)))}</td>"
            f"<td>{e(r.criterion)}</td><td>{format_number(round(r.seconds))} s</td></tr>")
        sections.append(_claim_section(r, colour))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>paperzoo report ({e(preset)})</title>"
            f"<style>{_CSS}</style></head><body><h1>paperzoo report</h1>"
            + (f"<p class=smoke>{note}</p>" if note else "")
            + f"<p class=meta>{_environment_line(payload)}; {format_number(round(total))} s of claims</p>"
            f"<p class=summary><b>{e(kind_summary(counts_by_kind(results)))}</b></p>"
            f"<p class=summary>all claims: {badges}</p>"
            + "".join(f"<p class=why><b>incomplete:</b> {e(line)}</p>" for line in worker_deaths(results))
            + f"{forest}"
            f"<table><colgroup><col style='width:27%'><col style='width:9%'><col style='width:17%'>"
            f"<col style='width:25%'><col style='width:18%'><col style='width:4%'></colgroup>"
            f"<tr><th>claim</th><th>verdict</th><th>paper reports</th><th>measured</th><th>criterion</th>"
            f"<th>time</th></tr>{''.join(rows)}</table>{''.join(sections)}</body></html>\n")
