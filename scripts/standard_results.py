"""Write the committed standard-preset results, one file per paper, from a `reproduce --preset standard` run.

    python scripts/standard_results.py runs/standard            # every paper the run holds
    python scripts/standard_results.py runs/standard capsnet    # only these papers

Each docs/results/standard/<paper>.json holds that paper's claims (with their protocol fingerprints), the run's
environment and settings, and `paper_seconds`: the seconds its claims took (one worker runs a paper's claims one
after another, so this is the paper's wall time). A paper's claims and numbers are the same whether it ran alone or
beside others (its seeds derive from the base seed and the paper), so one run of several papers may be split here;
a paper whose code changed is rerun alone (`paperzoo reproduce PAPER --preset standard`) and written again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "standard"


def split(results: dict, papers: list[str]) -> dict[str, dict]:
    """{paper: its results file} for the papers of a standard run (all of them when `papers` is empty)."""
    if results.get("preset") != "standard" or not results.get("complete"):
        raise SystemExit("need the results.json of a complete `paperzoo reproduce --preset standard` run")
    by_paper: dict[str, list] = {}
    for claim in results["claims"]:
        by_paper.setdefault(claim["id"].split(".")[0], []).append(claim)
    unknown = [p for p in papers if p not in by_paper]
    if unknown:
        raise SystemExit(f"not in this run: {', '.join(unknown)}; it holds {', '.join(by_paper)}")
    keep = {"schema", "complete", "preset", "seed", "run", "environment"}
    return {paper: {**{k: v for k, v in results.items() if k in keep},
                    "paper_seconds": round(sum(c["seconds"] for c in claims), 1), "claims": claims}
            for paper, claims in by_paper.items() if not papers or paper in papers}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    run = Path(argv[0])
    results = json.loads((run / "results.json" if run.is_dir() else run).read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    for paper, data in split(results, argv[1:]).items():
        (OUT / f"{paper}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}/{paper}.json ({data['paper_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
