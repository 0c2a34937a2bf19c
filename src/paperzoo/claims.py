"""Claims: one sentence of a paper that a run can confirm or refute, and the runner behind `paperzoo reproduce`.

A claim separates measuring from judging: `run(ctx)` returns the measured numbers, and `check(measured)`, a
criterion fixed in code before the run (and stated in words in `criterion`), turns them into the verdict.
Nothing sets a verdict by hand. A claim that raises becomes `error`; one that cannot run here raises `SkipClaim`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

Preset = Literal["smoke", "quick", "full"]
PRESETS: tuple[str, ...] = ("smoke", "quick", "full")
Verdict = Literal["reproduced", "not_reproduced", "error", "skipped"]


class SkipClaim(Exception):
    """Raised by a claim's run when it cannot run here (e.g. "needs a GPU"); the message is the reason."""


@dataclass
class Measurement:
    values: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    notes: str = ""


@dataclass
class RunContext:
    """What a claim's run receives: the preset, its own output folder, the seed, and a memo shared by the claims
    of one paper within one `reproduce` run (train a model once, measure it in several claims)."""

    preset: str
    out_dir: Path
    seed: int = 0
    memo: dict = field(default_factory=dict)
    progress: bool = False  # show training progress bars (reproduce's --no-progress turns them off)

    def pick(self, smoke: Any, quick: Any, full: Any) -> Any:
        return {"smoke": smoke, "quick": quick, "full": full}[self.preset]

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]

    def figure_path(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name


@dataclass(frozen=True)
class Claim:
    id: str  # "<module>.<short_name>"
    paper: str
    statement: str
    paper_reports: str  # what the paper itself reports
    criterion: str  # the criterion in words; `check` is the same criterion in code
    run: Callable[[RunContext], Measurement]
    check: Callable[[dict[str, Any]], bool]


@dataclass
class ClaimResult:
    id: str
    paper: str
    statement: str
    paper_reports: str
    criterion: str
    preset: str
    verdict: Verdict
    measured: dict[str, Any]
    seconds: float
    figures: list[str]
    message: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def run_claim(claim: Claim, ctx: RunContext) -> ClaimResult:
    started = time.perf_counter()
    measured: dict[str, Any] = {}
    figures: list[str] = []
    message = ""
    try:
        result = claim.run(ctx)
        measured, figures, message = result.values, [str(p) for p in result.figures], result.notes
        verdict: Verdict = "reproduced" if claim.check(measured) else "not_reproduced"
    except SkipClaim as e:
        verdict, message = "skipped", str(e)
    except Exception as e:  # the report shows it; the other claims still run
        verdict = "error"
        message = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    return ClaimResult(
        id=claim.id,
        paper=claim.paper,
        statement=claim.statement,
        paper_reports=claim.paper_reports,
        criterion=claim.criterion,
        preset=ctx.preset,
        verdict=verdict,
        measured=measured,
        seconds=round(time.perf_counter() - started, 2),
        figures=figures,
        message=message,
    )


def select(entries: list, papers: list[str]) -> list[tuple[Any, list[Claim]]]:
    """(entry, claims) for the requested papers (modules or claim ids); all implemented ones when none given."""
    from paperzoo.errors import UserError

    if not papers:
        return [(e, e.claims) for e in entries if e.claims or e.import_error]
    chosen = []
    for name in papers:
        matches = [(e, e.claims) for e in entries if e.post.module == name]
        matches += [(e, [c for c in e.claims if c.id == name]) for e in entries if any(c.id == name for c in e.claims)]
        if not matches:
            known = [e.post.module for e in entries] + [c.id for e in entries for c in e.claims]
            raise UserError(f"unknown paper or claim {name!r}; choose from: {', '.join(known)}")
        if not matches[0][1] and not matches[0][0].import_error:
            raise UserError(f"{name!r} has no claims yet ({matches[0][0].status}); see `paperzoo list`")
        chosen += matches
    return chosen


def run_selected(chosen: list[tuple[Any, list[Claim]]], preset: str, out_dir: Path, seed: int,
                 progress: bool = True) -> list[ClaimResult]:
    """Run every chosen claim in order; a paper whose module fails to import yields one `error` row."""
    from tqdm.auto import tqdm

    results = []
    total = sum(len(claims) or 1 for _, claims in chosen)
    with tqdm(total=total, desc="claims", disable=not progress, dynamic_ncols=True) as bar:
        for entry, claims in chosen:
            if entry.import_error:
                results.append(ClaimResult(f"{entry.post.module}.*", entry.post.paper, "(module failed to import)",
                                           "", "", preset, "error", {}, 0.0, [], entry.import_error))
                bar.update(1)
                continue
            memo: dict = {}
            for claim in claims:
                bar.set_postfix_str(claim.id)
                ctx = RunContext(preset=preset, out_dir=out_dir / "figures" / claim.id, seed=seed, memo=memo,
                                 progress=progress)
                results.append(run_claim(claim, ctx))
                bar.write(f"{results[-1].verdict:>15}  {claim.id}  ({results[-1].seconds:.0f} s)")
                bar.update(1)
    return results
