"""Only our own files (issue #37): `--overwrite` removes the files the earlier run wrote (its manifest), never a
user's file or folder; a folder that another command wrote is refused unless `--overwrite`."""

import json

from paperzoo import run_folders
from paperzoo.cli import EXIT_USER_ERROR, main

TINY = ["train.steps=2", "train.batch_size=8", "channels=4", "train.progress=false"]


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_overwrite_removes_only_the_files_the_run_wrote(tmp_path, capsys):
    proj = tmp_path / "proj"
    (proj / "checkpoints").mkdir(parents=True)
    (proj / "checkpoints" / "best.pt").write_text("w")  # the user's, in a folder a run also writes into
    (proj / "notes.txt").write_text("mine")
    assert main(["train", "sanity_cnn", *TINY, "--out", str(proj), "--overwrite"]) == 0
    assert (proj / "checkpoints" / "best.pt").read_text() == "w" and (proj / "notes.txt").read_text() == "mine"
    manifest = json.loads((proj / run_folders.MANIFEST).read_text())
    assert manifest["command"] == "train" and "checkpoints/last.safetensors" in manifest["files"]
    assert "checkpoints/best.pt" not in manifest["files"] and "notes.txt" not in manifest["files"]
    assert main(["train", "sanity_cnn", *TINY, "train.lr=0.01", "--out", str(proj), "--overwrite"]) == 0
    assert (proj / "checkpoints" / "best.pt").read_text() == "w" and (proj / "notes.txt").read_text() == "mine"
    assert json.loads((proj / "config.json").read_text())["train"]["lr"] == 0.01
    # a folder written before manifests: only the files a run writes, by name; a subfolder only when left empty
    legacy = tmp_path / "legacy"
    for name in ("config.json", "metrics.jsonl", "checkpoints/last.safetensors", "checkpoints/best.pt",
                 "tensorboard/events.out.tfevents.1.host"):
        (legacy / name).parent.mkdir(parents=True, exist_ok=True)
        (legacy / name).write_text("x")
    assert run_folders.held_output(legacy)[0] == "train"
    removed = run_folders.remove_output(legacy)
    assert sorted(removed) == ["checkpoints/last.safetensors", "config.json", "metrics.jsonl",
                               "tensorboard/events.out.tfevents.1.host"]
    assert _files(legacy) == ["checkpoints/best.pt"] and not (legacy / "tensorboard").exists()


def test_a_manifest_cannot_point_outside_its_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "outside.txt").write_text("keep")
    (run / "results.json").write_text("{}")
    (run / run_folders.MANIFEST).write_text(json.dumps({"command": "reproduce", "files": [
        "../outside.txt", str(tmp_path / "outside.txt"), "results.json"]}))
    assert run_folders.remove_output(run) == ["results.json"]
    assert (tmp_path / "outside.txt").read_text() == "keep"
    run_folders.record(run, "reproduce", tmp_path / "outside.txt", "../outside.txt", run / "report.html")
    assert json.loads((run / run_folders.MANIFEST).read_text())["files"] == ["report.html"]


def test_a_folder_another_command_wrote_is_refused_unless_overwrite(tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    for name in ("results.json", "report.html", "figures/sanity.mnist_cnn/curve.png"):
        (report / name).parent.mkdir(parents=True, exist_ok=True)
        (report / name).write_text("{}")
    run_folders.record(report, "reproduce", "results.json", "report.html", "figures/sanity.mnist_cnn/curve.png")
    (report / "figures" / "mine.png").write_text("user")
    assert main(["train", "sanity_cnn", *TINY, "--out", str(report)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "already holds a report (results.json, report.html, figures/sanity.mnist_cnn/curve.png, written by " \
           "`paperzoo reproduce`)" in err, err
    assert (report / "results.json").exists()
    assert main(["train", "sanity_cnn", *TINY, "--out", str(report), "--overwrite"]) == 0
    assert not (report / "results.json").exists() and not (report / "figures" / "sanity.mnist_cnn").exists()
    assert (report / "figures" / "mine.png").read_text() == "user"
    # and the other way: a training run is not a report folder
    assert main(["reproduce", "sanity", "--preset", "smoke", "--out", str(report)]) == EXIT_USER_ERROR
    assert "already holds a training run (config.json" in capsys.readouterr().err
    assert json.loads((report / run_folders.MANIFEST).read_text())["command"] == "train"
