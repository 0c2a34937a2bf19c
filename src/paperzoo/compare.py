"""`paperzoo compare A/results.json B/results.json`: what changed between two `reproduce` runs (a rerun, another
machine, another commit): the claims whose verdict changed, the per-seed quantities whose mean in one run lies
outside the other run's 95% interval (or, for a claim measured on the same seeds, any per-seed value that differs:
a rerun must repeat them exactly), the single-run values that differ, the environment that differs, the claims whose
protocol fingerprint differs (the experiment or its judgement changed: their verdicts are not comparable), and a
warning when the two runs used other presets, ran other papers, were written with another results schema, or one of
them is incomplete (stopped, lost a worker, or still running). A file whose entries are not claims of a results.json
(a claim without an id or verdict, values of the wrong type) is refused with the entry named."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from paperzoo.errors import UserError

COMPARED_ENVIRONMENT = ("cpu", "cpu_count", "threads", "torch", "numpy", "scipy", "blas", "python", "cuda")


def load_results(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; pass a results.json (or its folder) written by `paperzoo reproduce`")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); pass a results.json written by `paperzoo reproduce`")
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise UserError(f"{path} has no list of claims; is it a results.json written by `paperzoo reproduce`?")
    if not isinstance(data.get("environment", {}), dict):
        raise UserError(f"{path}: 'environment' must be an object; is it a results.json written by `paperzoo "
                        "reproduce`?")
    for i, claim in enumerate(data["claims"]):
        problem = _entry_problem(claim)
        if problem:
            raise UserError(f"{path}: claims[{i}] is not a claim of a results.json ({problem}); pass a results.json "
                            "written by `paperzoo reproduce`")
    return data


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _entry_problem(claim) -> str:
    """What makes `claim` not a claim entry of a results.json ("" when it is one)."""
    from paperzoo.claims import VERDICTS

    if not isinstance(claim, dict):
        return f"a {type(claim).__name__}, not an object"
    if not isinstance(claim.get("id"), str) or not claim["id"]:
        return f"its id is {claim.get('id')!r}, not a claim id"
    if claim.get("verdict") not in VERDICTS:
        return f"{claim['id']}: verdict {claim.get('verdict')!r} is not one of {', '.join(VERDICTS)}"
    kinds = {"measured": dict, "per_seed": dict, "summary": dict, "seeds": list}
    for key, kind in kinds.items():
        if key in claim and not isinstance(claim[key], kind):
            return f"{claim['id']}: {key} is a {type(claim[key]).__name__}, not a{'n' * (kind is dict)} " \
                   f"{'object' if kind is dict else 'list'}"
    if "fingerprint" in claim and not isinstance(claim["fingerprint"], (str, type(None))):
        return f"{claim['id']}: fingerprint {claim['fingerprint']!r} is not a string"
    for quantity, values in claim.get("per_seed", {}).items():
        if not isinstance(values, list):
            return f"{claim['id']}: per_seed {quantity} is not a list"
    for quantity, summary in claim.get("summary", {}).items():
        if not (isinstance(summary, dict) and _number(summary.get("mean"))
                and all(summary.get(k) is None or _number(summary.get(k)) for k in ("low", "high"))):
            return f"{claim['id']}: summary {quantity} needs a number 'mean' and 'low'/'high' numbers or null"
    return ""


@dataclass
class Comparison:
    verdicts: list[tuple[str, str, str]] = field(default_factory=list)  # (claim, verdict in A, verdict in B)
    moved: list[tuple[str, str, dict, dict]] = field(default_factory=list)  # (claim, quantity, summary A, summary B)
    changed: list[tuple[str, str, object, object]] = field(default_factory=list)  # single-run values that differ
    not_repeated: list[tuple[str, str]] = field(default_factory=list)  # same seeds, different per-seed values
    other_seeds: list[str] = field(default_factory=list)  # claims measured on other seeds in B than in A
    only_in: list[tuple[str, str]] = field(default_factory=list)  # (claim, "A" or "B")
    environment: list[tuple[str, object, object]] = field(default_factory=list)
    protocol: list[tuple[str, str, str]] = field(default_factory=list)  # (claim, fingerprint A, fingerprint B)
    warnings: list[str] = field(default_factory=list)  # other presets, other papers


def _outside(value: float, summary: dict) -> bool:
    return summary["low"] is not None and not summary["low"] <= value <= summary["high"]


def _first_by_id(claims: list[dict]) -> dict[str, dict]:
    """id -> claim, in file order; a repeated id keeps its first entry."""
    by_id: dict[str, dict] = {}
    for claim in claims:
        by_id.setdefault(claim["id"], claim)
    return by_id


def compare(a: dict, b: dict) -> Comparison:
    from paperzoo.report import SCHEMA_VERSION

    out = Comparison()
    for side, data in (("A", a), ("B", b)):
        if "schema" in data and data["schema"] != SCHEMA_VERSION:
            out.warnings.append(f"{side} was written with results schema {data['schema']!r} (this paperzoo writes "
                                f"{SCHEMA_VERSION}): fields added since (kind, protocol fingerprint, looks) are "
                                "missing there, so their comparisons are left out")
        if data.get("complete") is False:
            stopped = data.get("stopped") if isinstance(data.get("stopped"), dict) else {}
            why = f", stopped with {len(stopped.get('not_run', []))} claims not run" if stopped else ""
            out.warnings.append(f"{side} is incomplete (\"complete\": false{why}: the run was stopped, crashed, lost a "
                                "worker or is still running); claims it lacks show as in one run only")
    env_a, env_b = a.get("environment", {}), b.get("environment", {})
    out.environment = [(k, env_a.get(k), env_b.get(k)) for k in COMPARED_ENVIRONMENT if env_a.get(k) != env_b.get(k)]
    claims_a, claims_b = (_first_by_id(data["claims"]) for data in (a, b))
    out.only_in = [(i, "A") for i in claims_a if i not in claims_b] + [(i, "B") for i in claims_b if i not in claims_a]
    if a.get("preset") != b.get("preset"):
        out.warnings.append(f"the runs used other presets ({a.get('preset')} -> {b.get('preset')}): other scales, "
                            "so other numbers and verdicts are expected")
    papers = [sorted({c["id"].split(".")[0] for c in data["claims"]}) for data in (a, b)]
    if papers[0] != papers[1]:
        out.warnings.append(f"the runs ran other papers ({', '.join(papers[0])} -> {', '.join(papers[1])})")
    for claim_id in (i for i in claims_a if i in claims_b):
        ca, cb = claims_a[claim_id], claims_b[claim_id]
        if ca.get("fingerprint") != cb.get("fingerprint") and ca.get("fingerprint") and cb.get("fingerprint"):
            out.protocol.append((claim_id, ca.get("fingerprint") or "none", cb.get("fingerprint") or "none"))
        if ca["verdict"] != cb["verdict"]:
            out.verdicts.append((claim_id, ca["verdict"], cb["verdict"]))
        same_seeds = ca.get("seeds") == cb.get("seeds")
        if not same_seeds:
            out.other_seeds.append(claim_id)
        pa, pb = ca.get("per_seed", {}), cb.get("per_seed", {})
        if same_seeds:
            out.not_repeated += [(claim_id, q) for q in pa if q in pb and pa[q] != pb[q]]
        sa, sb = ca.get("summary", {}), cb.get("summary", {})
        for quantity in (q for q in sa if q in sb):
            if _outside(sb[quantity]["mean"], sa[quantity]) or _outside(sa[quantity]["mean"], sb[quantity]):
                out.moved.append((claim_id, quantity, sa[quantity], sb[quantity]))
        ma, mb = ca.get("measured", {}), cb.get("measured", {})
        out.changed += [(claim_id, k, ma[k], mb[k]) for k in ma if k in mb and ma[k] != mb[k]]
    return out


def _summary_text(s: dict) -> str:
    interval = f" [{s['low']:.4g}, {s['high']:.4g}]" if s["low"] is not None else " (no interval)"
    return f"{s['mean']:.4g}{interval}"


def format_comparison(c: Comparison, name_a: str, name_b: str) -> str:
    lines = [f"A = {name_a}", f"B = {name_b}"]
    lines += [f"warning: {w}" for w in c.warnings]
    if c.environment:
        lines += ["", "environment differs (numbers are comparable bit for bit only on the same one):"]
        lines += [f"  {k}: {va} -> {vb}" for k, va, vb in c.environment]
    if c.protocol:
        lines += ["", f"protocol changed (the experiment or its criterion differs; see "
                      f"docs/results/protocol-changes.md): {len(c.protocol)}"]
        lines += [f"  {claim}: {fa} -> {fb}" for claim, fa, fb in c.protocol]
    lines += ["", f"verdicts changed: {len(c.verdicts)}"]
    lines += [f"  {claim}: {va} -> {vb}" for claim, va, vb in c.verdicts]
    if c.other_seeds:
        lines += ["", f"measured on other seeds (compare them by their intervals only): {', '.join(c.other_seeds)}"]
    repeat = "expected on another environment" if c.environment else "a rerun on the same environment repeats them"
    lines += ["", f"same seeds, different per-seed values ({repeat}): {len(c.not_repeated)}"]
    lines += [f"  {claim}  {q}" for claim, q in c.not_repeated]
    lines += ["", f"per-seed means outside the other run's 95% interval: {len(c.moved)}"]
    lines += [f"  {claim}  {q}: {_summary_text(sa)} -> {_summary_text(sb)}" for claim, q, sa, sb in c.moved]
    lines += ["", f"single-run values that differ (no interval to judge them by): {len(c.changed)}"]
    lines += [f"  {claim}  {k}: {str(va)[:60]} -> {str(vb)[:60]}" for claim, k, va, vb in c.changed]
    if c.only_in:
        lines += ["", "claims in one run only:"] + [f"  {claim} (only in {side})" for claim, side in c.only_in]
    return "\n".join(lines)
