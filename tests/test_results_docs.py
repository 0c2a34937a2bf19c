"""The README and the docs quote numbers only from the committed quick-preset results (docs/results/quick.json)."""

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


def test_readme_verdicts_equal_the_results_file(quick):
    readme = (ROOT / "README.md").read_text()
    shown = dict(re.findall(r"^\| `([\w.]+)`: .*\| (\*{0,2}[a-z ]+\*{0,2})(?: \(.*\))? \|$", readme, re.M))
    expected = {c["id"]: _script().SHOWN[c["verdict"]] for c in quick["claims"]}
    assert shown == expected


def test_every_generated_block_is_up_to_date(quick):
    script = _script()
    rendered = script.blocks(quick)
    for path in script.targets():
        text = path.read_text()
        assert script.render(text, rendered) == text, f"{path.name} is stale: run python scripts/readme_claims.py"
    readme = (ROOT / "README.md").read_text()
    for name in ("posts", "claims", "timing"):  # the README carries each of its blocks
        assert f"<!-- results:{name} -->" in readme
    for module in {c["id"].split(".")[0] for c in quick["claims"]} - {"engine"}:
        assert f"<!-- results:claims {module} -->" in (ROOT / "docs" / f"{module}.md").read_text(), module


def test_render_fills_blocks_and_rejects_an_unknown_one():
    script = _script()
    assert script.render("a\n<!-- results:x -->\nold\n<!-- /results:x -->\nb", {"x": "new"}) == \
        "a\n<!-- results:x -->\nnew\n<!-- /results:x -->\nb"
    with pytest.raises(KeyError, match="unknown results block 'y'"):
        script.render("<!-- results:y -->\n<!-- /results:y -->", {"x": ""})
