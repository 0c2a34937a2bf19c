import json

import pytest

from paperzoo import plotting
from paperzoo.catalog import POSTS, load_catalog
from paperzoo.claims import Claim, Measurement, SkipClaim, run_claim, run_selected, select
from paperzoo.errors import UserError
from paperzoo.report import write_report


def _claim(name, run, check=lambda m: m["x"] > 1):
    return Claim(id=f"toy.{name}", paper="Toy 2024", statement=f"statement {name}", paper_reports="x = 2",
                 criterion="x > 1", run=run, check=check)


def _figure(ctx):
    return plotting.curves(ctx.figure_path("curve.png"), {"a": ([0, 1, 2], [3, 2, 1])}, "step", "loss")


def test_verdicts_come_from_the_check_of_the_measurement(tmp_path):
    from paperzoo.claims import RunContext

    ctx = RunContext("smoke", tmp_path)
    assert run_claim(_claim("a", lambda c: Measurement({"x": 2})), ctx).verdict == "reproduced"
    assert run_claim(_claim("b", lambda c: Measurement({"x": 0.5})), ctx).verdict == "not_reproduced"

    def boom(c):
        raise RuntimeError("exploded on purpose")

    failed = run_claim(_claim("c", boom), ctx)
    assert failed.verdict == "error" and "exploded on purpose" in failed.message

    def skip(c):
        raise SkipClaim("needs a GPU")

    skipped = run_claim(_claim("d", skip), ctx)
    assert skipped.verdict == "skipped" and skipped.message == "needs a GPU"


def test_shared_memo_builds_once_per_paper(tmp_path):
    from paperzoo.catalog import Entry, Post

    builds = []

    def measure(ctx):
        return Measurement({"x": ctx.shared("model", lambda: builds.append(1) or 5)})

    entry = Entry(Post(99, "toy", "Toy", "Toy 2024"), claims=[_claim("a", measure), _claim("b", measure)])
    results = run_selected([(entry, entry.claims)], "smoke", tmp_path, seed=0, progress=False)
    assert [r.verdict for r in results] == ["reproduced", "reproduced"] and builds == [1]


def test_report_files_hold_every_claim_and_inline_figures(tmp_path):
    from paperzoo.catalog import Entry, Post

    def boom(ctx):
        raise ValueError("bad")

    claims = [_claim("good", lambda c: Measurement({"x": 3.0}, [_figure(c)])), _claim("bad", boom),
              _claim("low", lambda c: Measurement({"x": 0.25}))]
    entry = Entry(Post(99, "toy", "Toy", "Toy 2024"), claims=claims)
    results = run_selected([(entry, claims)], "smoke", tmp_path, seed=7, progress=False)
    paths = write_report(results, tmp_path, "smoke", 7)

    data = json.loads(paths["json"].read_text())
    assert data["preset"] == "smoke" and data["seed"] == 7
    assert data["summary"] == {"reproduced": 1, "error": 1, "not_reproduced": 1}
    keys = {"id", "paper", "statement", "paper_reports", "criterion", "preset", "verdict", "measured", "seconds",
            "figures", "message"}
    assert all(set(c) == keys for c in data["claims"])
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "error", "not_reproduced"]
    assert data["claims"][0]["measured"] == {"x": 3.0}

    html = paths["html"].read_text()
    for claim in claims:
        assert claim.id in html and claim.statement in html
    assert html.count("data:image/png;base64,") == 1
    md = paths["md"].read_text()
    assert "| `toy.good` | **reproduced** |" in md and "figures/toy.good/curve.png" in md


def test_catalog_lists_all_eleven_posts_and_the_engine():
    entries = load_catalog()
    assert [e.post.module for e in entries[1:]] == [p.module for p in POSTS] and len(POSTS) == 11
    assert entries[0].post.module == "engine" and entries[0].status == "implemented"
    assert all(e.import_error is None for e in entries), [e.import_error for e in entries if e.import_error]


def test_select_by_paper_or_claim_id_and_unknown_names():
    entries = load_catalog()
    chosen = select(entries, ["engine.sanity_mnist_cnn"])
    assert [c.id for _, claims in chosen for c in claims] == ["engine.sanity_mnist_cnn"]
    with pytest.raises(UserError, match="unknown paper or claim 'nope'"):
        select(entries, ["nope"])
