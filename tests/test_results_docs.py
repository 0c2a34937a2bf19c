"""The README and the docs quote numbers only from the committed quick-preset results (docs/results/quick.json):
the README through scripts/readme_claims.py, the docs site when it is built (tests/test_docs_site.py)."""

import importlib.util
import json
import re
from pathlib import Path

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
    assert quick["preset"] == "quick" and quick["schema"] == 2
    assert {c["id"] for c in quick["claims"]} == registered, "rerun make demo: the registered claims changed"
    for claim in quick["claims"]:
        if claim["per_seed"]:
            assert len(claim["seeds"]) >= 3, claim["id"]
            assert all(len(v) == len(claim["seeds"]) for v in claim["per_seed"].values()), claim["id"]
    assert sum(quick["summary"].values()) == len(quick["claims"])


def test_readme_verdict_counts_equal_the_results_file(quick):
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| [-\d]+ \| .* \| \[`paperzoo\.(\w+)`\]\(docs/\1\.md\) \| .* \| (.*) \|$", readme, re.M)
    shown = {module: dict((v.replace(" ", "_"), int(n)) for n, v in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", counts))
             for module, counts in rows}
    expected = {}
    for claim in quick["claims"]:
        per_module = expected.setdefault(claim["id"].split(".")[0], {})
        per_module[claim["verdict"]] = per_module.get(claim["verdict"], 0) + 1
    assert shown == expected


def test_every_generated_block_is_up_to_date(quick):
    script = _script()
    for path, rendered in script.targets(quick).items():
        text = path.read_text()
        assert script.render(text, rendered) == text, f"{path.name} is stale: run python scripts/readme_claims.py"
    assert "<!-- results:posts -->" in (ROOT / "README.md").read_text()
    for page, name in [("index", "posts"), ("claims", "timing"), ("benchmarks", "benchmarks")]:
        assert f"<!-- results:{name} -->" in (ROOT / "docs" / f"{page}.md").read_text(), page
    for module in {c["id"].split(".")[0] for c in quick["claims"]}:
        page = "engine" if module == "engine" else module
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
