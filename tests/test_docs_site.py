"""The docs site builds in strict mode (a broken link, a missing API target or an unknown results block fails), and
the numbers it shows are those of the committed results files at build time."""

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(page: Path) -> str:
    """What a reader sees of a built page: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert build.returncode == 0, f"mkdocs build --strict failed (pip install -e '.[docs]'):\n{build.stderr[-4000:]}"
    return out


@pytest.mark.slow
def test_each_paper_page_shows_its_claims_with_the_committed_numbers_and_links_its_api(site):
    quick = json.loads((ROOT / "docs" / "results" / "quick.json").read_text())
    claims = _load("readme_claims")
    for post in [claims.ENGINE, *claims.POSTS]:
        page = site / f"{claims.page_of(post)}.html"
        text = _text(page)
        assert f'href="api/{post.module}.html"' in page.read_text(), post.module
        mine = [c for c in quick["claims"] if c["id"].split(".")[0] == post.module]
        assert f"latest verdicts (quick): {claims._counts(mine)}" in text, post.module
        assert "Rendered from docs/results/ when the site is built" not in text, f"{post.module}: a results block was left as its placeholder"
        for c in mine:
            first = claims.measured_text(c["measured"], c.get("summary")).split("; ")[0]
            row = re.search(re.escape(c["id"]) + r" ?: .*?" + re.escape(first), text)
            assert row, f"{c['id']}: {first!r} not on {page.name}"


@pytest.mark.slow
def test_home_benchmarks_and_api_pages_are_rendered_from_the_results_and_the_code(site):
    quick = json.loads((ROOT / "docs" / "results" / "quick.json").read_text())
    claims, hooks = _load("readme_claims"), _load("docs_hooks")
    assert claims._counts(quick["claims"]) in _text(site / "index.html")
    assert f"{quick['run']['wall_seconds'] / 60:.1f} min" in _text(site / "claims.html")
    bench = json.loads((ROOT / "docs" / "results" / "bench.json").read_text())
    assert claims.bench_goals(bench).split("\n")[0].replace("`", "") in _text(site / "benchmarks.html")
    api = (site / "api" / "index.html").read_text()
    for name in hooks.api_modules():
        assert f'href="{name}.html"' in api and (site / "api" / f"{name}.html").exists(), name
    assert {"capsnet", "engine", "data", "claims", "stats"} <= set(hooks.api_modules())
    assert "__main__" not in hooks.api_modules()
    capsnet = (site / "api" / "capsnet.html").read_text()
    assert 'id="paperzoo.capsnet.model.CapsNet"' in capsnet and 'href="#paperzoo.capsnet.model.CapsNet"' in capsnet


def test_exports_follow_re_exports_to_their_definition():
    hooks = _load("docs_hooks")
    exports = hooks.exports("capsnet")
    assert exports["CapsNet"] == "paperzoo.capsnet.model.CapsNet"
    assert exports["random_affine"] == "paperzoo.data.transforms.random_affine"  # defined in another package
    assert hooks.exports("batchnorm")["LayerNorm"] is None  # torch's own: shown without a link
    assert hooks.exports("claims") == {}  # a plain module exports nothing


def test_docstring_listings_are_fenced_lists_set_apart_and_prose_left_alone():
    fence = _load("docs_griffe").docstring_markdown
    listing = "Title.\n\nsquash          Eq. 1\nmargin_loss     Eq. 4\n                continued\n\nProse after."
    assert fence(listing) == ("Title.\n\n```text\nsquash          Eq. 1\nmargin_loss     Eq. 4\n"
                              "                continued\n```\n\nProse after.")
    indented = "It provides:\n  CLAIMS: list      its claims\n  CLI_VERBS: dict   verbs\nA closing line."
    assert fence(indented) == ("It provides:\n\n```text\n  CLAIMS: list      its claims\n  CLI_VERBS: dict   verbs\n"
                               "```\n\nA closing line.")
    prose = "One line of prose,\n  wrapped under a sentence.\n\n- an item\n  its continuation"
    assert fence(prose) == prose
    assert fence("Decided on:\n- one\n- two,\n  continued.\nAfter.") == "Decided on:\n\n- one\n- two,\n  continued.\n\nAfter."


@pytest.mark.slow
def test_no_list_is_rendered_as_a_paragraph(site):
    """Python-Markdown needs a blank line before a list; without it the items run on inside the paragraph above."""
    run_on = {page.relative_to(site).as_posix(): hit.group(0)[-60:]
              for page in site.rglob("*.html") if (hit := re.search(r"<p>[^<]*\n(- |\d+\. )", page.read_text()))}
    assert not run_on, f"lists run into the paragraph above (add a blank line before them): {run_on}"


def test_a_packages_api_page_shows_its_exporting_modules_first_and_no_claims_module():
    hooks = _load("docs_hooks")
    modules = hooks.submodules("dpo")
    assert "paperzoo.dpo.experiments" not in modules and "paperzoo.dpo.bandit" in modules
    assert modules.index("paperzoo.dpo.loss") < modules.index("paperzoo.dpo.bandit")  # bandit exports nothing
    assert modules[0] == min(m for m in modules if m != "paperzoo.dpo.bandit")
