"""The report of a `reproduce` run: results.json (machine-readable), report.md, and a self-contained
report.html (claims table coloured by verdict, each claim's figures inline as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
import os
import platform
from collections import Counter
from pathlib import Path

import torch

from paperzoo.claims import ClaimResult

VERDICT_COLOURS = {"reproduced": "#d6f5d6", "not_reproduced": "#fde2c8", "error": "#f8c9c9", "skipped": "#e6e6e6"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(_fmt(v) for v in value[:8])}, ...] ({len(value)})"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(_fmt(v) for v in value)}]"
    return str(value)


def measured_text(measured: dict) -> str:
    return "; ".join(f"{k} = {_fmt(v)}" for k, v in measured.items())


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads()}


def write_report(results: list[ClaimResult], out_dir: Path, preset: str, seed: int) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = Counter(r.verdict for r in results)
    payload = {"preset": preset, "seed": seed, "environment": environment(), "summary": dict(counts),
               "claims": [r.to_json() for r in results]}
    paths = {"json": out_dir / "results.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n")
    paths["md"].write_text(_markdown(results, out_dir, preset, counts))
    paths["html"].write_text(_html(results, out_dir, preset, seed, counts))
    return paths


def _summary_line(counts: Counter) -> str:
    return ", ".join(f"{counts.get(v, 0)} {v.replace('_', ' ')}" for v in VERDICT_COLOURS)


def _markdown(results: list[ClaimResult], out_dir: Path, preset: str, counts: Counter) -> str:
    lines = [f"# paperzoo report (preset `{preset}`)", "", _summary_line(counts), "",
             "| claim | verdict | paper reports | measured | criterion | s |", "|---|---|---|---|---|---|"]
    for r in results:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines.append(f"| `{r.id}` | **{r.verdict}** | {cell(r.paper_reports)} | {cell(measured_text(r.measured))} "
                     f"| {cell(r.criterion)} | {r.seconds:.0f} |")
    for r in results:
        lines += ["", f"## {r.id}: {r.verdict}", "", f"> {r.statement}", "", f"*Paper:* {r.paper}", ""]
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


def _html(results: list[ClaimResult], out_dir: Path, preset: str, seed: int, counts: Counter) -> str:
    e = html.escape
    env = environment()
    badges = "".join(f'<span style="background:{c}">{counts.get(v, 0)} {v.replace("_", " ")}</span>'
                     for v, c in VERDICT_COLOURS.items())
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
            f"<br>{e(r.statement)}</td><td class=verdict>{e(r.verdict.replace('_', ' '))}</td>"
            f"<td>{e(r.paper_reports)}</td><td>{e(measured_text(r.measured))}</td><td>{e(r.criterion)}</td>"
            f"<td>{r.seconds:.0f}</td></tr>")
        sections.append(
            f'<div class=claim id="{e(r.id)}" style="border-left:8px solid {colour}">'
            f"<h3><code>{e(r.id)}</code>: {e(r.verdict.replace('_', ' '))}</h3><p>{e(r.statement)}</p>"
            f"<p class=meta>{e(r.paper)}; paper reports: {e(r.paper_reports)}; criterion: {e(r.criterion)}; "
            f"{r.seconds:.1f} s</p><p><b>measured:</b> {e(measured_text(r.measured))}</p>"
            + (f"<pre>{e(r.message.strip())}</pre>" if r.message else "")
            + f'<div class=figs>{"".join(_img(f) for f in r.figures)}</div></div>')
    return (f"<!doctype html><html><head><meta charset=utf-8><title>paperzoo report ({e(preset)})</title>"
            f"<style>{_CSS}</style></head><body><h1>paperzoo report</h1>"
            f"<p class=meta>preset <b>{e(preset)}</b>, seed {seed}; torch {e(env['torch'])}, python {e(env['python'])}"
            f", CUDA {'yes' if env['cuda'] else 'no'}; {sum(r.seconds for r in results):.0f} s in all</p>"
            f"<p class=summary>{badges}</p>"
            f"<table><colgroup><col style='width:27%'><col style='width:9%'><col style='width:17%'>"
            f"<col style='width:25%'><col style='width:18%'><col style='width:4%'></colgroup>"
            f"<tr><th>claim</th><th>verdict</th><th>paper reports</th><th>measured</th><th>criterion</th>"
            f"<th>s</th></tr>{''.join(rows)}</table>{''.join(sections)}</body></html>\n")
