import json
from dataclasses import replace

import numpy as np
import pytest

from paperzoo import plotting
from paperzoo.catalog import POSTS, load_catalog
from paperzoo.claims import Claim, Measurement, SkipClaim, longest_first, run_claim, run_selected, select
from paperzoo.errors import UserError
from paperzoo.report import write_report


def _claim(name, run, check=lambda m: m["x"] > 1):
    return Claim(id=f"toy.{name}", paper="Toy 2024", statement=f"statement {name}", paper_reports="x = 2",
                 criterion="x > 1", run=run, check=check, kind="empirical")


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

    forgot_return = run_claim(_claim("e", lambda c: Measurement({"x": 2}), check=lambda m: None), ctx)
    assert forgot_return.verdict == "error" and "must return a bool, a Test or a Decision" in forgot_return.reason


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
    assert data["summary"] == {"reproduced": 1, "error": 1, "not_reproduced": 1, "inconclusive": 0, "skipped": 0}
    keys = {"id", "paper", "statement", "paper_reports", "criterion", "preset", "verdict", "measured", "seconds",
            "figures", "message", "reason", "seeds", "per_seed", "summary", "preconditions", "tests", "timings",
            "kind", "fingerprint", "looks", "planned_looks", "confidence"}
    assert all(set(c) == keys for c in data["claims"])
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "error", "not_reproduced"]
    assert data["claims"][0]["measured"] == {"x": 3.0}

    html = paths["html"].read_text()
    for claim in claims:
        assert claim.id in html and claim.statement in html
    assert html.count("data:image/png;base64,") == 1
    md = paths["md"].read_text()
    assert "| `toy.good` | **reproduced** |" in md and "figures/toy.good/curve.png" in md


def _seeded(ctx):
    """Per seed: a value that depends on the seed only, and a timing that must stay out of the comparison."""
    per_seed = ctx.over_seeds(lambda s: {"acc": 0.9 + (s % 1000) / 1e5, "chance_gap": 0.5})
    return Measurement({"n": 3}, per_seed=per_seed, timings={"seconds": 1.5})


def test_over_seeds_intervals_preconditions_and_the_five_verdicts_in_results_json(tmp_path):
    from paperzoo.catalog import Entry, Post
    from paperzoo.criteria import Precondition, at_least

    trained = Precondition("the model trained: >= 10 points above chance", lambda m: min(m["chance_gap"]) >= 0.1,
                           ("chance_gap",))
    untrained = Precondition("a baseline above chance", lambda m: at_least("gap", m["chance_gap"], 0.6))
    claims = [
        _claim("holds", _seeded, lambda m: at_least("accuracy", m["acc"], 0.8)),
        _claim("refuted", _seeded, lambda m: at_least("accuracy", m["acc"], 0.95)),
        _claim("straddles", _seeded, lambda m: at_least("accuracy", m["acc"], 0.9 + 5e-3)),
        _claim("untrained", _seeded, lambda m: at_least("accuracy", m["acc"], 0.8)),
    ]
    claims[0], claims[3] = replace(claims[0], preconditions=(trained,)), replace(claims[3], preconditions=(untrained,))
    entry = Entry(Post(99, "toy", "Toy", "Toy 2024"), claims=claims)
    results = run_selected([(entry, claims)], "quick", tmp_path, seed=3, progress=False)
    data = json.loads(write_report(results, tmp_path, "quick", 3)["json"].read_text())

    by_id = {c["id"]: c for c in data["claims"]}
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "not_reproduced", "inconclusive", "inconclusive"]
    assert data["summary"]["inconclusive"] == 2 and data["schema"] == 3
    assert data["summary_by_kind"]["empirical"]["reproduced"] == 1 and all(c["fingerprint"] for c in data["claims"])
    holds = by_id["toy.holds"]
    assert len(holds["seeds"]) == 3 and len(set(holds["seeds"])) == 3  # quick: three distinct seeds
    assert holds["per_seed"]["acc"] == [0.9 + (s % 1000) / 1e5 for s in holds["seeds"]]
    assert holds["summary"]["acc"]["mean"] == pytest.approx(sum(holds["per_seed"]["acc"]) / 3)
    assert holds["summary"]["acc"]["low"] < holds["summary"]["acc"]["mean"] < holds["summary"]["acc"]["high"]
    assert holds["preconditions"] == [{"text": "the model trained: >= 10 points above chance", "held": True,
                                       "values": {"chance_gap": [0.5, 0.5, 0.5]},
                                       "detail": "chance_gap = [0.5, 0.5, 0.5]"}]
    assert holds["tests"][0]["outcome"] is True and holds["tests"][0]["threshold"] == 0.8
    assert holds["timings"] == {"seconds": 1.5} and "seconds" not in holds["measured"]
    assert "straddles" in by_id["toy.straddles"]["reason"]
    assert by_id["toy.untrained"]["reason"].startswith("precondition not met: a baseline above chance")
    assert by_id["toy.untrained"]["tests"] == []  # the criterion was never judged

    # seeds derive from (base seed, paper); another base seed gives other seeds
    again = run_selected([(entry, claims[:1])], "quick", tmp_path / "b", seed=3, progress=False)
    other = run_selected([(entry, claims[:1])], "quick", tmp_path / "c", seed=4, progress=False)
    assert again[0].seeds == holds["seeds"] and not set(other[0].seeds) & set(holds["seeds"])
    html = (tmp_path / "report.html").read_text()
    assert "1 inconclusive" not in html and "2 inconclusive" in html and "precondition not met" in html
    assert (tmp_path / "figures" / "overview.png").is_file() and (tmp_path / "figures" / "toy.holds" / "seeds.png").is_file()


def test_compare_lists_changed_verdicts_and_values_beyond_their_intervals(tmp_path, capsys):
    from paperzoo.cli import main
    from paperzoo.compare import compare

    def claim(verdict, mean, low, high, value, seeds=(1, 2, 3)):
        return {"id": "toy.a", "verdict": verdict, "measured": {"n": value}, "seeds": list(seeds),
                "per_seed": {"acc": [low, mean, high]},
                "summary": {"acc": {"mean": mean, "sd": 0.0, "low": low, "high": high, "n": 3}}}

    a = {"environment": {"threads": 2}, "claims": [claim("reproduced", 0.90, 0.88, 0.92, 1)]}
    inside = {"environment": {"threads": 2}, "claims": [claim("reproduced", 0.91, 0.90, 0.93, 1)]}
    moved = {"environment": {"threads": 1}, "claims": [claim("inconclusive", 0.95, 0.85, 1.0, 2, seeds=(4, 5, 6))]}
    same = compare(a, inside)
    assert same.verdicts == [] and same.moved == [] and same.changed == [] and same.environment == []
    assert same.not_repeated == [("toy.a", "acc")]  # same seeds: per-seed values must repeat exactly
    assert compare(a, a).not_repeated == []
    diff = compare(a, moved)  # 0.95 lies outside A's [0.88, 0.92]
    assert diff.verdicts == [("toy.a", "reproduced", "inconclusive")]
    assert [(c, q) for c, q, _, _ in diff.moved] == [("toy.a", "acc")]
    assert diff.changed == [("toy.a", "n", 1, 2)] and diff.environment == [("threads", 2, 1)]
    assert diff.other_seeds == ["toy.a"] and diff.not_repeated == []

    protocol = {**a, "preset": "quick", "claims": [{**a["claims"][0], "fingerprint": "0123"}]}
    other = {**a, "preset": "smoke", "claims": [{**a["claims"][0], "fingerprint": "4567"}]}
    flagged = compare(protocol, other)
    assert flagged.protocol == [("toy.a", "0123", "4567")] and "other presets (quick -> smoke)" in flagged.warnings[0]
    assert compare(protocol, protocol).protocol == [] and compare(protocol, protocol).warnings == []

    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(moved))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "toy.a: reproduced -> inconclusive" in out and "threads: 2 -> 1" in out
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "bad.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_catalog_lists_all_eleven_posts_and_the_engine():
    entries = load_catalog()
    assert [e.post.module for e in entries[1:]] == [p.module for p in POSTS] and len(POSTS) == 11
    assert entries[0].post.module == "sanity" and entries[0].status == "implemented"
    assert all(e.import_error is None for e in entries), [e.import_error for e in entries if e.import_error]


def test_select_by_paper_or_claim_id_and_unknown_names():
    entries = load_catalog()
    chosen = select(entries, ["sanity.mnist_cnn"])
    assert [c.id for _, claims in chosen for c in claims] == ["sanity.mnist_cnn"]
    with pytest.raises(UserError, match="unknown paper or claim 'nope'"):
        select(entries, ["nope"])


def test_report_folders_are_new_checked_before_running_and_never_overwritten_unasked(tmp_path, monkeypatch, capsys):
    from paperzoo.cli import main
    from paperzoo.report import report_folder

    monkeypatch.chdir(tmp_path)
    first, second = report_folder(None), report_folder(None)  # the same second: still two folders
    assert first != second and first.is_dir() and second.is_dir() and second.name.startswith(first.name)
    done = tmp_path / "done"
    done.mkdir()
    (done / "results.json").write_text("{}")
    assert main(["reproduce", "causal.counterfactuals", "--preset", "smoke", "--out", str(done)]) == 2
    assert "already holds a report" in capsys.readouterr().err and (done / "results.json").read_text() == "{}"
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["reproduce", "causal.counterfactuals", "--preset", "smoke", "--out", str(blocked / "sub")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert main(["reproduce", "causal.counterfactuals", "--preset", "smoke", "--out", str(done), "--overwrite",
                 "--no-progress"]) == 0
    assert json.loads((done / "results.json").read_text())["complete"] is True


def test_results_json_is_written_as_each_claim_finishes(tmp_path):
    from paperzoo.catalog import Entry, Post
    from paperzoo.report import write_partial

    seen = []

    def peek(ctx):  # the second claim reads what the first left on disk
        seen.append(json.loads((tmp_path / "results.json").read_text()))
        return Measurement({"x": 2})

    claims = [_claim("first", lambda c: Measurement({"x": 3})), _claim("second", peek)]
    entry = Entry(Post(99, "toy", "Toy", "Toy 2024"), claims=claims)
    run_selected([(entry, claims)], "smoke", tmp_path, seed=0, progress=False,
                 on_results=lambda done: write_partial(done, tmp_path, "smoke", 0))
    assert seen[0]["complete"] is False and [c["id"] for c in seen[0]["claims"]] == ["toy.first"]
    final = json.loads((tmp_path / "results.json").read_text())
    assert [c["id"] for c in final["claims"]] == ["toy.first", "toy.second"] and final["complete"] is False
    assert not list(tmp_path.glob(".results.json.tmp-*"))  # written atomically, nothing left behind


def test_papers_start_longest_first_by_the_seconds_of_the_committed_results(tmp_path):
    rows = [{"id": "a.x", "seconds": 10}, {"id": "b.y", "seconds": 60}, {"id": "b.z", "seconds": 40},
            {"id": "d.w", "seconds": 50}]
    (tmp_path / "quick.json").write_text(json.dumps({"claims": rows}))
    # b took 100 s in all, d 50, a 10; c is not in the file, so it may be long: it starts first
    assert longest_first(["a", "b", "c", "d"], "quick", tmp_path) == [2, 1, 3, 0]
    assert longest_first(["a", "b", "c"], "smoke", tmp_path) == [0, 1, 2]  # no results of that preset
    (tmp_path / "quick.json").write_text('{"claims": [{"id": "a.x"}]}')  # unreadable: the given order
    assert longest_first(["b", "a"], "quick", tmp_path) == [0, 1]


def test_standard_results_per_paper_time_the_progress_line(tmp_path):
    from paperzoo.claims import committed_seconds, time_left

    (tmp_path / "standard").mkdir()
    (tmp_path / "standard" / "a.json").write_text(json.dumps({"claims": [{"id": "a.x", "seconds": 600},
                                                                         {"id": "a.y", "seconds": 300}]}))
    (tmp_path / "standard" / "b.json").write_text(json.dumps({"claims": [{"id": "b.x", "seconds": 1500}]}))
    seconds = committed_seconds("standard", tmp_path)
    assert seconds == {"a": 900.0, "b": 1500.0}
    assert time_left(seconds, 2, "standard") == "~20 min left by the committed standard results"  # 2,400 s / 2
    assert time_left({"a": 900.0, "c": None}, 1, "standard").startswith("~15 min left") and "not timed" in \
        time_left({"a": 900.0, "c": None}, 1, "standard")
    assert time_left({"c": None}, 1, "standard") == ""


def test_seeds_passed_by_the_user_give_one_look_of_that_many(tmp_path):
    from paperzoo.claims import RunContext

    ctx = RunContext("quick", tmp_path, seed=7, stream="toy", seeds=[1, 2, 3, 4, 5, 6])
    seen = []

    def measure(c):
        seen.append(list(c.seeds))
        return Measurement({"x": 0.5 + len(c.seeds) / 10})

    planned = replace(_claim("planned", measure), looks={"quick": (3, 5)})
    assert run_claim(planned, ctx, looks=(6,)).seeds == [1, 2, 3, 4, 5, 6] and seen == [[1, 2, 3, 4, 5, 6]]


def test_configure_threads_limits_torch_and_the_native_blas_pools(tmp_path):
    import subprocess
    import sys

    code = ("from threadpoolctl import threadpool_info\nimport torch\nfrom paperzoo.claims import configure_threads\n"
            "configure_threads(1)\nprint(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "1 [1]"  # numpy's / scikit-learn's BLAS no longer take every core


def test_numbers_are_written_alike_everywhere():
    from paperzoo.report import format_number, measured_text

    assert [format_number(v) for v in (0.1 + 0.2, 0.97631, 1.987e-08, -0.0, 999.94, 4000, 4000.0, 118282,
                                       23456.7, np.float32(0.1), np.int64(12345), float("nan"))] == \
        ["0.3", "0.9763", "1.987e-08", "0", "999.9", "4,000", "4,000", "118,282", "23,457", "0.1", "12,345", "nan"]
    summary = {"acc": {"mean": 0.1 + 0.2, "low": 0.25000000001, "high": 1 / 3, "n": 3, "sd": 0.0}}
    assert measured_text({"batches": {"32": 23.600000000000001, "2": 1 / 3}, "steps": 1200, "flags": [0.1 + 0.2]},
                         summary) == "acc = 0.3 [0.25, 0.3333] (3 seeds); batches = {32: 23.6, 2: 0.3333}; " \
                                     "steps = 1,200; flags = [0.3]"


def test_a_verdict_reported_beside_the_claim_shows_its_settings_verdict_and_reason_not_its_details():
    from paperzoo.report import measured_text

    full_data = {"train_examples": 3200, "epochs": 39, "verdict": "reproduced", "reason": "gap = -0.02 < 0.01: holds",
                 "preconditions": [{"text": "the regime", "held": True}], "tests": [{"label": "gap"}]}
    assert measured_text({"full_data": full_data}) == \
        "full_data = {train_examples: 3,200, epochs: 39} reproduced: gap = -0.02 < 0.01: holds"


def test_a_smoke_report_says_at_the_top_that_it_checks_the_plumbing_only(tmp_path):
    from paperzoo.claims import RunContext, run_claim
    from paperzoo.report import SMOKE_NOTE

    result = run_claim(_claim("a", lambda c: Measurement({"x": 2, "gap": 0.1 + 0.2, "parameters": 118282})),
                       RunContext("smoke", tmp_path / "figures"))
    write_report([result], tmp_path / "smoke", "smoke", 0)
    write_report([result], tmp_path / "quick", "quick", 0)
    html = (tmp_path / "smoke" / "report.html").read_text()
    body = html[html.index("<body>"):]
    assert body.index("checks the plumbing only") < body.index("<table>")  # above the verdicts
    assert "<code>paperzoo reproduce --preset quick</code>" in html
    assert (tmp_path / "smoke" / "report.md").read_text().splitlines()[2] == f"**{SMOKE_NOTE}**"
    for preset in ("smoke", "quick"):
        page = (tmp_path / preset / "report.html").read_text()
        assert "gap = 0.3<br>parameters = 118,282" in page and "0.30000000000000004" not in page
        assert "<th>time</th>" in page
    assert "plumbing" not in (tmp_path / "quick" / "report.html").read_text()
    assert "plumbing" not in (tmp_path / "quick" / "report.md").read_text()
