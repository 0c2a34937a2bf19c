"""Render the numbers of the README and the docs site from the committed results, so they show measured numbers,
never hand-typed ones.

The blocks between `<!-- results:NAME -->` and `<!-- /results:NAME -->` markers are generated from
docs/results/quick.json (`make demo`, i.e. `paperzoo reproduce --preset quick --jobs 2`), the per-paper files of
docs/results/standard/ (`paperzoo reproduce PAPER --preset standard`, then scripts/standard_results.py) and
docs/results/bench.json (`paperzoo bench --out docs/results/bench.json`):
  posts           the posts table with each module's latest verdict counts (README.md, docs/index.md)
  claims MODULE   that paper's claims with their measured numbers (docs/MODULE.md)
  post MODULE     the box at the top of a paper's page: paper, module, API link, latest verdicts (docs/MODULE.md)
  timing          the quick preset's wall time (docs/claims.md)
  benchmarks      the goals table of the speed/memory benchmarks (docs/benchmarks.md)
  dependencies    the torch versions checked, with their test counts (docs/getting-started.md), from
                  docs/results/dependencies.json (scripts/check_torch_version.py, `make check-torch`)
The README's blocks are written into README.md by this script. The docs pages keep a one-line placeholder in
theirs, filled when the site is built (`make docs`; scripts/docs_hooks.py calls `blocks` and `render` below), so
the site shows the results files as they are at build time.

    python scripts/readme_claims.py          rewrite the README's blocks (and reset the docs' placeholders)
    python scripts/readme_claims.py --check  exit 1 when a block differs from what the results give
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from paperzoo import bench
from paperzoo.catalog import ENGINE, POSTS
from paperzoo.claims import VERDICTS
from paperzoo.report import measured_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "quick.json"
STANDARD = ROOT / "docs" / "results" / "standard"
BENCH = ROOT / "docs" / "results" / "bench.json"
DEPENDENCIES = ROOT / "docs" / "results" / "dependencies.json"
SHOWN = {"reproduced": "reproduced", "not_reproduced": "**not reproduced**", "inconclusive": "*inconclusive*",
         "skipped": "skipped", "error": "**error**"}
PLACEHOLDER = "*Rendered from `docs/results/` when the site is built (`make docs`).*"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w ]+?) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def cell(text, limit: int = 0) -> str:
    text = str(text).replace("|", "/").replace("\n", " ")
    return text if not limit or len(text) <= limit else text[:limit].rstrip() + " …"


def _counts(claims: list[dict]) -> str:
    """The empirical claims' verdict counts first, then the checks apart: "2 reproduced, 1 not reproduced; checks:
    3 passed" (a results file older than claim kinds counts every claim as empirical)."""
    findings = Counter(c["verdict"] for c in claims if c.get("kind", "empirical") == "empirical")
    checks = Counter(c["verdict"] for c in claims if c.get("kind") == "check")
    text = ", ".join(f"{findings[v]} {v.replace('_', ' ')}" for v in VERDICTS if findings[v])
    if checks:
        failed = checks["not_reproduced"] + checks["error"]
        other = checks["inconclusive"] + checks["skipped"]
        tail = f", {other} not run or undecided" if other else ""
        text += f"{'; ' if text else ''}checks: {checks['reproduced']} passed, {failed} failed{tail}"
    return text


def load_results() -> dict:
    return json.loads(RESULTS.read_text())


def load_standard() -> dict[str, dict]:
    """The committed standard-preset results, one file per paper: {module: results}."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(STANDARD.glob("*.json"))}


def _standard_claims(standard: dict[str, dict]) -> dict[str, dict]:
    return {c["id"]: c for data in standard.values() for c in data["claims"]}


def page_of(post) -> str:
    """The docs page (without .md) that shows a post's claims: the sanity claim is shown on the engine's page."""
    return "engine" if post is ENGINE else post.module


def posts_table(data: dict, pages: str, standard: dict[str, dict] | None = None) -> str:
    """The posts table, with each paper's quick and standard verdicts; `pages` is the folder of the paper pages
    relative to where the table is shown."""
    standard = standard or {}
    by_module: dict[str, list] = {}
    for c in data["claims"]:
        by_module.setdefault(c["id"].split(".")[0], []).append(c)
    env = data["environment"]
    counts = sorted({len(c["seeds"]) for c in data["claims"] if c["per_seed"]}) or [1]  # claims measured over seeds
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    lines = [f"Latest verdicts, from `docs/results/quick.json` (`paperzoo reproduce --preset quick`, base seed "
             f"{data['seed']}, {seeds} seeds per stochastic measurement, torch "
             f"{env['torch']}, {env['cpu_count']}-core CPU). Empirical claims (findings of the papers): "
             f"{_counts(data['claims'])}. Checks are identities and implementation equivalences that only a bug "
             "could fail; they are counted apart.", "",
             f"Standard preset (`paperzoo reproduce PAPER --preset standard`, seeds added by sequential looks up to 8 "
             f"while a claim is undecided): {_counts(list(_standard_claims(standard).values())) or 'not run yet'} "
             f"({len(standard)} of {len(POSTS) + 1} papers run).", "",
             "| # | seed post | module | claims | latest verdicts (quick) | standard |", "|---|---|---|---|---|---|"]
    for post in [ENGINE, *POSTS]:
        claims = by_module.get(post.module, [])
        names = ", ".join(f"`{c['id'].split('.', 1)[1]}`" for c in claims)
        lines.append(f"| {post.number or '-'} | {post.title} | [`paperzoo.{post.module}`]({pages}{page_of(post)}.md) "
                     f"| {names} | {_counts(claims) or 'not yet implemented'} | "
                     f"{_counts(standard[post.module]['claims']) if post.module in standard else 'not run yet'} |")
    return "\n".join(lines)


def claims_table(claims: list[dict], standard: dict[str, dict] | None = None) -> str:
    """A paper's claims with their quick numbers and verdict, and their verdict at standard where it was run."""
    standard = standard or {}
    lines = ["| claim | paper reports | measured (quick; mean [interval] over seeds, 95% or the sequential plan's level) "
             "| verdict (quick) | standard |",
             "|---|---|---|---|---|"]
    for c in claims:
        why = f" ({cell(c['reason'], 160)})" if c["verdict"] in ("skipped", "inconclusive", "error", "not_reproduced") \
            else ""
        kind = " *(check)*" if c.get("kind") == "check" else ""
        lines.append(f"| `{c['id']}`: {cell(c['statement'])}{kind} | {cell(c['paper_reports'])} | "
                     f"{cell(measured_text(c['measured'], c.get('summary')), 300)} | {SHOWN[c['verdict']]}{why} | "
                     f"{_standard_cell(standard.get(c['id']))} |")
    return "\n".join(lines)


def _standard_cell(claim: dict | None) -> str:
    if claim is None:
        return "not run yet"
    seeds = f" ({len(claim['seeds'])} seeds)" if claim.get("per_seed") else ""
    why = f": {cell(claim['reason'], 160)}" if claim["verdict"] in ("skipped", "inconclusive", "error") else ""
    return f"{SHOWN[claim['verdict']]}{seeds}{why}"


def post_card(post, claims: list[dict]) -> str:
    """The box at the top of a paper's page on the site: the post, the paper, the module, where its API is
    documented, how to run its claims, and their latest verdicts."""
    number = f"Seed post {post.number}" if post.number else "Not a post"
    return "\n".join([f'!!! abstract "{number}: {post.title}"', f"    **Paper**: {post.paper}. **Module**: "
                      f"`paperzoo.{post.module}` ([API reference](api/{post.module}.md)). **Claims**: "
                      f"`paperzoo reproduce {post.module}`; latest verdicts (quick): "
                      f"{_counts(claims) or 'none yet'} ([how to read them](claims.md))."])


STANDARD_BUDGET_MIN = 30  # the standard preset's budget: wall minutes per paper on the 2-core machine, --jobs 2


def _load(run: dict) -> str:
    """The machine's 1-minute load average while the run took its wall time, as recorded (mean, max)."""
    load = run.get("load_average")
    return f"{load['mean']:.1f} (max {load['max']:.1f})" if load else "not recorded"


def timing(data: dict, standard: dict[str, dict] | None = None) -> str:
    """The quick preset's wall time, and each committed standard paper's against the standard budget, with the
    machine's load while each was measured."""
    run = data["run"]
    lines = ["| command | torch threads per process | load average while it ran (mean, max) | wall time | "
             f"within {STANDARD_BUDGET_MIN} min |", "|---|---|---|---|---|",
             f"| `paperzoo reproduce --preset quick --jobs {run['jobs']}` | {run['threads']} | {_load(run)} | "
             f"{run['wall_seconds'] / 60:.1f} min | |"]
    for module, paper in (standard or {}).items():
        minutes = paper["paper_seconds"] / 60
        lines.append(f"| `paperzoo reproduce {module} --preset standard --jobs {paper['run']['jobs']}` | "
                     f"{paper['run']['threads']} | {_load(paper['run'])} | {minutes:.1f} min | "
                     f"{'yes' if minutes <= STANDARD_BUDGET_MIN else 'no'} |")
    return "\n".join(lines)


def bench_goals(data: dict) -> str:
    """The goals table of docs/results/bench.json, after a line counting the goals by status."""
    counts = Counter(r["status"] if r["status"] in ("met", "missed", "undecided") else "skipped"
                     for r in data["rows"] if r["goal"])
    tally = ", ".join(f"{counts[s]} {s}" for s in ("met", "missed", "undecided", "skipped") if counts[s])
    return f"Goals: {tally} (of {sum(counts.values())}).\n\n{bench.markdown(data)}"


def dependencies(data: dict) -> str:
    """The torch versions checked (scripts/check_torch_version.py): how each was installed, what its tests gave."""
    lines = ["| torch | python | installed | core tests | checked |", "|---|---|---|---|---|"]
    for e in data["entries"]:
        tests = f"{e['passed']} passed, {e['failed']} failed" + (f", {e['skipped']} skipped" if e["skipped"] else "")
        lines.append(f"| {e['torch']} | {e['python']} | {e['installed_with']} | {tests} | {e['date']} |")
    return "\n".join(lines)


def blocks(data: dict, pages: str = "docs/") -> dict[str, str]:
    """Every results block by name; the posts table links to the paper pages under `pages`."""
    standard = load_standard()
    by_id = _standard_claims(standard)
    out = {"posts": posts_table(data, pages, standard), "timing": timing(data, standard)}
    if BENCH.exists():
        out["benchmarks"] = bench_goals(json.loads(BENCH.read_text()))
    if DEPENDENCIES.exists():
        out["dependencies"] = dependencies(json.loads(DEPENDENCIES.read_text()))
    for post in [ENGINE, *POSTS]:
        claims = [c for c in data["claims"] if c["id"].split(".")[0] == post.module]
        out[f"claims {post.module}"] = claims_table(claims, by_id)
        out[f"post {post.module}"] = post_card(post, claims)
    return out


def render(text: str, rendered: dict[str, str]) -> str:
    def fill(match: re.Match) -> str:
        if match["name"] not in rendered:
            raise KeyError(f"unknown results block {match['name']!r}; known: {', '.join(rendered)}")
        return f"{match[1]}{rendered[match['name']]}\n{match[4]}"

    return BLOCK.sub(fill, text)


def targets(data: dict) -> dict[Path, dict[str, str]]:
    """Each file this script writes, with the blocks it gets: the README its numbers, a docs page placeholders."""
    rendered = blocks(data)
    placeholders = dict.fromkeys(rendered, PLACEHOLDER)
    return {ROOT / "README.md": rendered, **{path: placeholders for path in sorted((ROOT / "docs").glob("*.md"))}}


def main(argv: list[str]) -> int:
    stale = []
    for path, rendered in targets(load_results()).items():
        text = path.read_text()
        new = render(text, rendered)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv and stale:
        print(f"out of date with {RESULTS.relative_to(ROOT)}: {', '.join(map(str, stale))}; "
              "run python scripts/readme_claims.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
