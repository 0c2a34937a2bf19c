"""The README and the docs quote numbers only from the committed results (docs/results/quick.json and, per paper,
docs/results/standard/): the README through scripts/readme_claims.py, the docs site when it is built
(tests/test_docs_site.py)."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "docs" / "results" / "quick.json"


def _script():
    spec = importlib.util.spec_from_file_location("readme_claims", ROOT / "scripts" / "readme_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick() -> dict:
    return json.loads(QUICK.read_text())


def test_quick_results_are_a_full_quick_run_with_the_evidence(quick):
    from paperzoo.catalog import load_catalog

    registered = {c.id for e in load_catalog() for c in e.claims}
    assert quick["preset"] == "quick" and quick["schema"] == 3
    assert {c["id"] for c in quick["claims"]} == registered, "rerun make demo: the registered claims changed"
    for claim in quick["claims"]:
        if claim["per_seed"]:
            assert len(claim["seeds"]) >= 3, claim["id"]
            assert all(len(v) == len(claim["seeds"]) for v in claim["per_seed"].values()), claim["id"]
    assert sum(quick["summary"].values()) == len(quick["claims"])


def test_readme_verdict_counts_equal_the_results_file(quick):
    """Per module: the empirical claims' verdict counts, then the checks that passed, counted apart."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| [-\d]+ \| .* \| \[`paperzoo\.(\w+)`\]\(docs/\w+\.md\) \| [^|]* \| ([^|]*) \| [^|]* \|$",
                      readme, re.M)
    shown = {}
    for module, cell in rows:
        findings, _, checks = cell.partition("checks: ")
        counts = {v.replace(" ", "_"): int(n) for n, v in re.findall(r"(\d+) ([a-z ]+?)(?:[,;]|$)", findings)}
        if checks:
            counts["checks_passed"] = int(re.match(r"(\d+) passed", checks)[1])
        shown[module] = counts
    expected = {}
    for claim in quick["claims"]:
        per_module = expected.setdefault(claim["id"].split(".")[0], {})
        key = claim["verdict"] if claim["kind"] == "empirical" else "checks_passed"
        if claim["kind"] == "empirical" or claim["verdict"] == "reproduced":
            per_module[key] = per_module.get(key, 0) + 1
        elif claim["kind"] == "check":
            per_module.setdefault("checks_passed", 0)
    assert shown == expected


def _independent_outcome(test: dict, low: float, high: float):
    """The rule of docs/claims.md, written out again: holds on the near bound, fails on the far one."""
    d, threshold, refute = test["direction"], test["threshold"], test["refute_at"]
    if d in (">", ">="):
        holds = low > threshold if d == ">" else low >= threshold
        fails = high <= refute if d == ">" else high < refute
    else:
        holds = high < threshold if d == "<" else high <= threshold
        fails = low >= refute if d == "<" else low > refute
    return True if holds else False if fails else None


def test_every_claim_carries_its_kind_and_the_committed_outcomes_follow_the_rule(quick):
    """Kinds and fingerprints on every claim; and each t-based test's interval, recomputed from its per-seed values
    with scipy at the claim's confidence, gives the committed outcome under the rule written out independently."""
    from scipy import stats as sps

    checked = 0
    for claim in quick["claims"]:
        assert claim["kind"] in ("empirical", "check") and claim["fingerprint"], claim["id"]
        for test in claim["tests"]:
            interval, values = test["interval"], np.asarray(test["per_seed"], dtype=float)
            if interval["method"] not in ("t", "t on log-ratios", "t on logs") or len(values) < 2:
                continue
            logs = interval["method"] != "t"
            x = np.log(values) if logs else values
            if np.ptp(x) == 0:
                low = high = float(x[0])
            else:
                half = sps.t.ppf((1 + interval["confidence"]) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
                low, high = x.mean() - half, x.mean() + half
            if logs:
                low, high = np.exp(low), np.exp(high)
            assert (interval["low"], interval["high"]) == pytest.approx((low, high), rel=1e-6, abs=1e-12), \
                (claim["id"], test["label"])
            assert test["outcome"] is _independent_outcome(test, low, high), (claim["id"], test["label"])
            checked += 1
    assert checked >= 30


def test_every_claims_protocol_matches_the_committed_results_or_its_change_is_recorded(quick):
    """A claim whose protocol (fingerprint) differs from the committed quick.json must be rerun (make demo) or have
    its change recorded in docs/results/protocol-changes.md: a row naming the claim and its new fingerprint."""
    from paperzoo.catalog import load_catalog
    from paperzoo.claims import fingerprint

    rows = [line for line in (ROOT / "docs" / "results" / "protocol-changes.md").read_text().splitlines()
            if line.startswith("| ")]
    committed = {c["id"]: c["fingerprint"] for c in quick["claims"]}
    unrecorded = [f"{c.id} ({fingerprint(c)})" for e in load_catalog() for c in e.claims
                  if committed.get(c.id) != fingerprint(c)
                  and not any(f"`{c.id}`" in row and f"`{fingerprint(c)}`" in row for row in rows)]
    assert not unrecorded, ("protocol changed since docs/results/quick.json without a record in "
                            f"docs/results/protocol-changes.md: {', '.join(unrecorded)}")


def test_every_generated_block_is_up_to_date(quick):
    script = _script()
    for path, rendered in script.targets(quick).items():
        text = path.read_text()
        assert script.render(text, rendered) == text, f"{path.name} is stale: run python scripts/readme_claims.py"
    assert "<!-- results:posts -->" in (ROOT / "README.md").read_text()
    for page, name in [("index", "posts"), ("claims", "timing"), ("benchmarks", "benchmarks")]:
        assert f"<!-- results:{name} -->" in (ROOT / "docs" / f"{page}.md").read_text(), page
    for module in {c["id"].split(".")[0] for c in quick["claims"]}:
        page = "engine" if module == "sanity" else module
        assert f"<!-- results:claims {module} -->" in (ROOT / "docs" / f"{page}.md").read_text(), module


def test_docs_pages_hold_placeholders_not_numbers(quick):
    """The docs pages get their numbers when the site is built; what is committed is a placeholder, so no page
    carries numbers that a newer results file has replaced."""
    script = _script()
    for path in sorted((ROOT / "docs").glob("*.md")):
        for match in script.BLOCK.finditer(path.read_text()):
            assert match["body"] == script.PLACEHOLDER + "\n", f"{path.name}: block {match['name']!r}"


def test_render_fills_blocks_and_rejects_an_unknown_one():
    script = _script()
    assert script.render("a\n<!-- results:x -->\nold\n<!-- /results:x -->\nb", {"x": "new"}) == \
        "a\n<!-- results:x -->\nnew\n<!-- /results:x -->\nb"
    with pytest.raises(KeyError, match="unknown results block 'y'"):
        script.render("<!-- results:y -->\n<!-- /results:y -->", {"x": ""})


def test_committed_standard_results_match_the_code():
    """Each docs/results/standard/<paper>.json is a complete standard run of that paper whose claims' protocol
    fingerprints equal the code's; else the README's standard column could not be trusted."""
    from paperzoo.catalog import load_catalog
    from paperzoo.claims import fingerprint

    code = {c.id: fingerprint(c) for e in load_catalog() for c in e.claims}
    stale = []
    for path in sorted((ROOT / "docs" / "results" / "standard").glob("*.json")):
        data = json.loads(path.read_text())
        assert data["preset"] == "standard" and data["complete"] and data["paper_seconds"] > 0, path.name
        assert {c["id"].split(".")[0] for c in data["claims"]} == {path.stem}, path.name
        if any(code.get(c["id"]) != c["fingerprint"] for c in data["claims"]):
            stale.append(path.stem)
    assert not stale, (f"the protocol of these papers changed since their standard results: {', '.join(stale)}; rerun "
                       "`paperzoo reproduce PAPER --preset standard` and scripts/standard_results.py")


def test_the_torch_lower_bound_is_the_oldest_version_checked_and_the_makefile_installs_one_checked():
    """pyproject.toml's `torch>=X` is the oldest torch of docs/results/dependencies.json (scripts/
    check_torch_version.py) whose core tests all passed after `pip install -e .`; the torch the Makefile installs is
    one of the checked versions, and every entry records the dependencies it resolved."""
    checked = json.loads((ROOT / "docs" / "results" / "dependencies.json").read_text())["entries"]
    passed = [e for e in checked if e["failed"] == 0 and e["passed"] > 0 and e["pytest_exit"] == 0]
    version = lambda text: tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0]))  # noqa: E731
    oldest = min((e["torch"] for e in passed), key=version)
    bound = re.search(r'"torch>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())[1]
    assert version(bound) == version(oldest)[:len(version(bound))], (bound, oldest)
    pinned = re.search(r"pip install --quiet torch==([\d.]+)", (ROOT / "Makefile").read_text())[1]
    assert pinned in {e["torch"].split("+")[0] for e in passed}
    assert all({"torch", "numpy", "safetensors", "scipy"} <= set(e["packages"]) for e in checked)
