import json
import subprocess
import sys

from paperzoo.catalog import POSTS
from paperzoo.cli import EXIT_USER_ERROR, main


def test_list_shows_all_eleven_posts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for post in POSTS:
        assert f"{post.number:>2}. {post.title}  [paperzoo.{post.module}]" in out
    assert "sanity.mnist_cnn" in out


def test_user_mistakes_print_one_message_without_traceback():
    run = subprocess.run([sys.executable, "-m", "paperzoo", "train", "sanity_cnn", "train.lrr=0.1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == EXIT_USER_ERROR
    assert "Traceback" not in run.stderr
    assert "unknown config key 'train.lrr'. Did you mean: train.lr" in run.stderr


def test_unknown_names_exit_2(capsys, tmp_path):
    assert main(["reproduce", "nopaper", "--out", str(tmp_path)]) == EXIT_USER_ERROR
    assert "unknown paper or claim 'nopaper'" in capsys.readouterr().err
    assert main(["train", "nomethod"]) == EXIT_USER_ERROR
    assert "unknown method 'nomethod'; choose from:" in capsys.readouterr().err
    assert main(["train", "sanity_cnn", "--resume", "--out", str(tmp_path / "none")]) == EXIT_USER_ERROR
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--dir", str(tmp_path / "nothing")]) == EXIT_USER_ERROR


def test_train_writes_the_resolved_config_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "sanity_cnn", "train.steps=4", "train.batch_size=8", "channels=4", "train.progress=false",
            "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "sanity_cnn" and config["channels"] == 4 and config["train"]["steps"] == 4
    assert (out / "checkpoints" / "last.safetensors").exists()
    assert "test_acc=" in capsys.readouterr().out
    args[2] = "train.steps=6"
    assert main(args + ["--resume"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [4, 6]


def test_sanity_claim_trains_end_to_end_at_smoke_preset(tmp_path, capsys):
    """The pipeline end to end: real MNIST digits -> engine -> claim -> report."""
    status = main(["reproduce", "sanity", "--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    results = json.loads((tmp_path / "results.json").read_text())
    result = results["claims"][0]
    load = results["run"]["load_average"]  # the machine's load beside the wall time it explains
    assert load["samples"] >= 2 and 0 <= load["mean"] <= load["max"] and results["run"]["wall_seconds"] > 0
    # smoke runs one seed: the accuracy is measured, but one seed has no interval and decides nothing
    assert result["id"] == "sanity.mnist_cnn" and result["verdict"] == "inconclusive", result
    assert "no interval" in result["reason"] and len(result["seeds"]) == 1
    # smoke trains 300 of the claim's 900 steps: far above chance (10%); it need not reach the claim's 97%
    assert result["per_seed"]["test_acc"][0] >= 0.9 and result["summary"]["test_acc"]["low"] is None
    assert result["measured"]["steps"] == 300
    assert (tmp_path / "report.html").stat().st_size > 10_000  # the learning curve is inlined


def test_reproduce_plan_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    """`--plan`: each claim with its kind and the seeds of its planned looks (standard's sequential 3, 5, 8, or
    --seeds' one look), the committed time, and no run folder."""
    from paperzoo.cli import main

    out = tmp_path / "never"
    assert main(["reproduce", "causal", "--preset", "standard", "--plan", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("causal: 5 claims, ") and "committed standard results" in printed[0]
    assert any(line.startswith("  causal.rung1_vs_rung2  (") and line.endswith("; seeds per look: 3, 5, 8)")
               for line in printed), printed
    assert printed[-1].startswith("expected: ") and not out.exists()
    assert main(["reproduce", "causal.counterfactuals", "--seeds", "4", "--plan", "--out", str(out)]) == 0
    assert "seeds per look: 4)" in capsys.readouterr().out and not out.exists()
