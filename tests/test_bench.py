"""paperzoo.bench (the one benchmark format) and `paperzoo bench` (each benchmark in its own process)."""

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from paperzoo import bench
from paperzoo.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("direction", "low", "high", "status"), [
    (">=", 1.6, 2.0, "met"), (">=", 1.2, 1.4, "missed"), (">=", 1.4, 1.6, "undecided"),
    ("<=", 1.00, 1.02, "met"), ("<=", 1.04, 1.10, "missed"), ("<=", 1.01, 1.05, "undecided")])
def test_a_goal_is_decided_only_when_the_whole_range_is_on_one_side(direction, low, high, status):
    threshold = 1.5 if direction == ">=" else 1.03
    assert bench.Goal(direction, threshold).judge(low, high) == status


def test_a_goal_needs_a_direction():
    with pytest.raises(ValueError, match="direction"):
        bench.Goal(">", 1.0)


def test_spread_is_the_median_and_the_interquartile_range():
    assert bench.spread([5.0, 1.0, 3.0, 2.0, 4.0]) == (3.0, 2.0, 4.0)
    assert bench.spread([2.5]) == (2.5, 2.5, 2.5)


def test_interleaved_alternates_the_order_and_drops_the_warmup():
    calls = []
    counter = iter(range(100))

    def measure(name):
        def run():
            calls.append(name)
            return float(next(counter))
        return run

    values = bench.interleaved({"a": measure("a"), "b": measure("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert values == {"a": [3.0, 4.0], "b": [2.0, 5.0]}


def test_a_row_takes_median_and_spread_of_the_paired_ratios():
    ratios = bench.paired([2.0, 3.0, 4.0, 10.0], [1.0, 1.0, 1.0, 1.0])
    r = bench.row("x", "ours / ref", "time", ratios, bench.Goal(">=", 1.5), "cpu", {"ours ms": 2.0})
    assert (r["ratio"], r["low"], r["high"], r["repeats"], r["status"]) == (3.5, 2.75, 5.5, 4, "met")
    assert r["goal"] == ">= 1.5x" and r["device"] == "cpu" and r["threads"] == torch.get_num_threads()
    assert bench.row("x", "y", "z", [0.9], None, "cpu")["status"] == "no goal"
    skipped = bench.row("x", "y", "z", None, bench.Goal(">=", 1.0), "cpu", status="skipped: TRL not installed")
    assert skipped["ratio"] is None and skipped["status"] == "skipped: TRL not installed"
    with pytest.raises(ValueError, match="status"):
        bench.row("x", "y", "z", None, None, "cpu")


def test_report_prints_a_table_and_appends_json_lines(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    rows = [bench.row("x", f"c{i}", "z", [1.0 + i], bench.Goal("<=", 1.5), "cpu") for i in range(2)]
    bench.report(rows, str(out))
    bench.report(rows[:1], str(out))
    assert [json.loads(line)["name"] for line in out.read_text().splitlines()] == ["c0", "c1", "c0"]
    printed = capsys.readouterr().out
    assert "met" in printed and "missed" in printed and "ratio (median [IQR])" in printed


@pytest.mark.skipif(sys.platform != "linux", reason="peak resident memory is read from /proc")
def test_peak_memory_is_what_the_work_adds():
    held = torch.ones(16 * 2**20)  # 64 MiB already resident: not counted

    def allocate():
        return torch.ones(32 * 2**20).sum()  # 128 MiB, freed at once

    peak = bench.peak_mib(allocate)
    assert 110 <= peak <= 200, peak
    assert bench.peak_mib(lambda: held.sum()) < 20


def test_markdown_marks_what_is_not_met():
    rows = [bench.row("b", "one", "a | b", [2.0], bench.Goal(">=", 1.5), "cpu"),
            bench.row("b", "two", "c", [1.0], bench.Goal(">=", 1.5), "cpu")]
    data = {"command": "paperzoo bench", "rows": rows, "environment": {**bench.environment(), "load_after": [1.0]}}
    text = bench.markdown(data)
    assert "| met |" in text and "| **missed** |" in text and "a / b" in text


TINY = """
import argparse
import os
from paperzoo import bench

parser = bench.arguments(argparse.ArgumentParser(), repeats=3)
parser.add_argument("--flag", action="store_true")
args = bench.parse(parser)
print("pid", os.getpid(), "flag", args.flag)
bench.report([bench.row("{name}", "forwarded", "what the runner passed", [float(args.repeats)],
                        bench.Goal(">=", 2.0), "cpu", {{"flag": float(args.flag)}})], args.results)
"""


def _tiny_benchmarks(folder: Path) -> Path:
    folder.mkdir()
    for name in ("alpha", "beta"):
        (folder / f"{name}.py").write_text(TINY.format(name=name))
    (folder / "broken.py").write_text("import sys\nsys.exit(3)\n")
    (folder / "_helper.py").write_text("raise SystemExit('a helper is not a benchmark')\n")
    return folder


def test_bench_runs_each_named_benchmark_in_its_own_process_with_the_arguments(tmp_path, capfd):
    folder = _tiny_benchmarks(tmp_path / "benchmarks")
    out = tmp_path / "bench.json"
    code = main(["bench", "--dir", str(folder), "--out", str(out), "beta", "alpha", "--", "--repeats", "1", "--flag"])
    assert code == 0
    data = json.loads(out.read_text())
    assert [r["benchmark"] for r in data["rows"]] == ["beta", "alpha"]  # the order given
    assert all(r["ratio"] == 1.0 and r["values"] == {"flag": 1.0} and r["status"] == "missed" for r in data["rows"])
    assert data["command"].endswith("beta alpha -- --repeats 1 --flag")
    assert set(data["runs"]) == {"beta", "alpha"} and "load_after" in data["environment"]
    printed = capfd.readouterr().out
    pids = {line.split()[1] for line in printed.splitlines() if line.startswith("pid ")}
    assert len(pids) == 2  # a process each
    assert "== goals" in printed.split("== alpha")[1]  # the summary table ends the run


def test_bench_reports_a_failed_benchmark_and_runs_the_rest(tmp_path):
    folder = _tiny_benchmarks(tmp_path / "benchmarks")
    out = tmp_path / "bench.json"
    assert main(["bench", "--dir", str(folder), "--out", str(out), "broken", "alpha"]) == 1
    rows = json.loads(out.read_text())["rows"]
    assert [(r["benchmark"], r["status"]) for r in rows] == [("broken", "error: exit code 3"), ("alpha", "met")]


def test_bench_refuses_an_unknown_name_and_misplaced_options(tmp_path, capsys):
    folder = _tiny_benchmarks(tmp_path / "benchmarks")
    assert main(["bench", "--dir", str(folder), "alpha", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) nope; choose from: alpha, beta, broken" in err  # _helper.py is not listed
    assert main(["bench", "--dir", str(folder), "alpha", "--repeats", "1"]) == 2
    assert "after `--`" in capsys.readouterr().err
    assert main(["bench", "--dir", str(tmp_path / "empty")]) == 2


def test_every_benchmark_script_uses_the_format():
    scripts = bench.discover(ROOT / "benchmarks")
    assert len(scripts) == 11
    for name, script in scripts.items():
        text = script.read_text()
        assert "bench.arguments(" in text and "bench.report(" in text, name
        assert textwrap.dedent(text).startswith('"""'), name  # a module docstring
