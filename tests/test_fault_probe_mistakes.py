"""Every user mistake the fault probe of issue #37 met, through the real CLI, as one table: each ends in one
`paperzoo: error: ...` line naming what was wrong, exit status 2, no traceback, and nothing run. (The earlier probes'
mistakes are the tables of test_fault_probe_config.py and test_fault_probe_inputs.py.) Each row builds what it
needs from a few shared pieces: a tiny finished training run, tiny ViT checkpoints and a folder of images."""

import errno
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import paperzoo.engine.trainer
from paperzoo import bench
from paperzoo.claims import select
from paperzoo.catalog import load_catalog
from paperzoo.cli import EXIT_USER_ERROR, main
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.registers import build_vit

ROOT = Path(__file__).resolve().parent.parent
TINY = ["train.steps=2", "train.batch_size=8", "channels=4", "train.progress=false"]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    """A finished 2-step sanity_cnn run, a 0- and a 2-register tiny ViT checkpoint, four images in two classes."""
    root = tmp_path_factory.mktemp("pieces")
    assert main(["train", "sanity_cnn", *TINY, "--out", str(root / "run")]) == 0
    torch.manual_seed(0)
    for registers in (0, 2):
        torch.save(build_vit("vit_tiny", registers, img_size=28).state_dict(), root / f"vit{registers}.pth")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / "images" / cls / f"{i}.png")
    return root


def then(_, argv):
    """`argv`, after the side effect that is the first argument (evaluated first)."""
    return argv


def _copy(pieces, tmp_path, name):
    return shutil.copytree(pieces / name, tmp_path / name)


def _edit_config(folder, **train):
    config = json.loads((folder / "config.json").read_text())
    config["train"].update(train)
    (folder / "config.json").write_text(json.dumps(config))


def _rewrite_checkpoint(folder, change):
    path = folder / "checkpoints" / "last.safetensors"
    tensors, meta = read_checkpoint(path)
    change(tensors, meta)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"paperzoo": json.dumps(meta)})


def _narrower_head(tensors, meta):
    tensors["model.head.weight"] = tensors["model.head.weight"][:, :-1].clone()  # another model's shape


def _images(pieces, tmp_path, damage=None, count=None):
    """A copy of the images folder; `damage` writes one more file into it, `count` images in one class instead."""
    folder = _copy(pieces, tmp_path, "images")
    if count is not None:
        shutil.rmtree(folder)
        rng = np.random.default_rng(1)
        (folder / "a").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(folder / "a" / f"{i}.png")
    if damage is not None:
        damage(folder / "b" / "bad.jpg")
    return folder


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _large_png(path):
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(path.with_suffix(".png"))


def _results(claims, **top):
    return json.dumps({"schema": 3, "complete": True, "preset": "quick", "claims": claims, **top})


def _disk_full(monkeypatch):
    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(paperzoo.engine.trainer, "atomic_write", full)


def _bench(out):
    """A real benchmark to `--out`: the file is checked before it runs."""
    return ["bench", "--dir", str(ROOT / "benchmarks"), "--out", out, sorted(bench.discover(ROOT / "benchmarks"))[0]]


def _analyze(pieces, tmp_path, *extra):
    return ["analyze-vit", "--weights", str(pieces / "vit2.pth"), "--images", str(pieces / "images"), "--img-size",
            "28", "--out", str(tmp_path / "analysis"), *extra]


def _registers(pieces, images):
    return ["reproduce", "registers", "--preset", "smoke", "--weights", f"plain={pieces / 'vit0.pth'}",
            "--weights", f"reg={pieces / 'vit2.pth'}", "--images", str(images), "--out", "{tmp}/report"]


# id -> (build(pieces, tmp_path, monkeypatch) -> argv, what the one line must say)
MISTAKES = {
    # train: settings, a damaged config.json or checkpoint on --resume, an --out that cannot be a run folder
    "train.seed=-1": (lambda p, t, m: ["train", "sanity_cnn", *TINY, "train.seed=-1", "--out", f"{t}/r"],
                      "train.seed must be in [0, 2**63), got -1"),
    "train.seed=2**64": (lambda p, t, m: ["train", "sanity_cnn", *TINY, f"train.seed={2**64}", "--out", f"{t}/r"],
                         f"train.seed must be in [0, 2**63), got {2**64}"),
    "train.device=tpu": (lambda p, t, m: ["train", "sanity_cnn", *TINY, "train.device=tpu", "--out", f"{t}/r"],
                         "train.device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    "sanity_cnn channels=0": (lambda p, t, m: ["train", "sanity_cnn", *TINY, "channels=0", "--out", f"{t}/r"],
                              "channels must be >= 1, got 0"),
    "sanity_cnn max_shift=-1": (lambda p, t, m: ["train", "sanity_cnn", *TINY, "max_shift=-1", "--out", f"{t}/r"],
                                "max_shift must be >= 0, got -1"),
    "config.json lr null": (
        lambda p, t, m: _edit_config(_copy(p, t, "run"), lr=None) or ["train", "sanity_cnn", "--resume", "--out",
                                                                      f"{t}/run"],
        "train.lr=None: expected a finite number"),
    "config.json optimizer lion": (
        lambda p, t, m: _edit_config(_copy(p, t, "run"), optimizer="lion") or ["train", "sanity_cnn", "--resume",
                                                                               "--out", f"{t}/run"],
        "train.optimizer='lion' is not a valid choice; choose one of: adamw, adam, sgd"),
    "checkpoint of another model": (
        lambda p, t, m: _rewrite_checkpoint(_copy(p, t, "run"), _narrower_head) or [
            "train", "sanity_cnn", "train.steps=3", "--resume", "--out", f"{t}/run"],
        "holds another model's weights (shape mismatches (1): head.weight"),
    "checkpoint with a damaged step": (
        lambda p, t, m: _rewrite_checkpoint(_copy(p, t, "run"), lambda tensors, meta: meta.update(step="two")) or [
            "train", "sanity_cnn", "train.steps=3", "--resume", "--out", f"{t}/run"],
        "has damaged metadata (step 'two')"),
    "train --out a file": (lambda p, t, m: then((t / "file").write_text(""), ["train", "sanity_cnn", *TINY, "--out",
                                                                               f"{t}/file"]),
                           "is a file, not a folder"),
    "train --out under a file": (lambda p, t, m: then((t / "file").write_text(""), ["train", "sanity_cnn", *TINY,
                                                                                     "--out", f"{t}/file/run"]),
                                 "cannot write to"),
    "disk full": (lambda p, t, m: _disk_full(m) or ["train", "sanity_cnn", *TINY, "--out", f"{t}/r"],
                  "No space left on device writing"),
    # reproduce
    "reproduce --seed -5": (lambda p, t, m: ["reproduce", "sanity", "--seed", "-5", "--out", f"{t}/r"],
                            "--seed must be in [0, 2**63), got -5"),
    "reproduce into an analysis": (
        lambda p, t, m: then(((t / "a").mkdir(), (t / "a" / "analysis.json").write_text("{}")), [
            "reproduce", "sanity", "--preset", "smoke", "--out", f"{t}/a"]),
        "already holds an analysis (analysis.json, written by `paperzoo analyze-vit`); pass --overwrite"),
    "reproduce --out a file": (lambda p, t, m: then((t / "file").write_text(""), [
        "reproduce", "sanity", "--preset", "smoke", "--out", f"{t}/file"]), "is a file, not a folder"),
    "truncated JPEG among --images": (
        lambda p, t, m: [a.replace("{tmp}", str(t)) for a in _registers(p, _images(p, t, _truncated_jpeg))],
        "bad.jpg is not a readable image"),
    "fewer than 16 --images": (
        lambda p, t, m: [a.replace("{tmp}", str(t)) for a in _registers(p, _images(p, t, count=5))],
        "holds 5 images; registers is measured on at least 16"),
    # analyze-vit
    "analyze-vit --registers -1": (lambda p, t, m: _analyze(p, t, "--registers", "-1"),
                                   "--registers must be >= 0, got -1"),
    "analyze-vit --threshold nan": (lambda p, t, m: _analyze(p, t, "--threshold", "nan"),
                                    "--threshold must be a finite number > 0, got nan"),
    "analyze-vit a decompression bomb": (
        lambda p, t, m: m.setattr(Image, "MAX_IMAGE_PIXELS", 10_000) or _analyze(p, t)[:4] + [
            str(_images(p, t, _large_png))] + _analyze(p, t)[5:],
        "bad.png is too large to decode safely"),
    "analyze-vit into a report": (
        lambda p, t, m: then(((t / "analysis").mkdir(), (t / "analysis" / "results.json").write_text("{}")),
                             _analyze(p, t)),
        "already holds a report (results.json, written by `paperzoo reproduce`); pass --overwrite"),
    # bench
    "bench --out an existing file": (
        lambda p, t, m: then((t / "bench.json").write_text("{}"), _bench(f"{t}/bench.json")),
        "bench.json already exists; pass --overwrite"),
    "bench --out a folder": (lambda p, t, m: _bench(str(t)), "is a folder"),
    "bench --out under a file": (lambda p, t, m: then((t / "file").write_text(""), _bench(f"{t}/file/bench.json")),
                                 "cannot write"),
    # compare
    "compare a number for a claim": (
        lambda p, t, m: then((t / "a.json").write_text(_results([1])), ["compare", f"{t}/a.json", f"{t}/a.json"]),
        "claims[0] is not a claim of a results.json (a int, not an object)"),
    "compare a claim without a verdict": (
        lambda p, t, m: then((t / "a.json").write_text(_results([{"id": "a.b"}])), [
            "compare", f"{t}/a.json", f"{t}/a.json"]), "a.b: verdict None is not one of"),
    "compare a summary without numbers": (
        lambda p, t, m: then((t / "a.json").write_text(_results([{"id": "a.b", "verdict": "reproduced", "summary": {
            "acc": {"mean": "high"}}}])), ["compare", f"{t}/a.json", f"{t}/a.json"]),
        "a.b: summary acc needs a number 'mean'"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_every_mistake_is_one_line(pieces, tmp_path, monkeypatch, capsys, name):
    build, expected = MISTAKES[name]
    argv = build(pieces, tmp_path, monkeypatch)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR, capsys.readouterr()
    err = capsys.readouterr().err
    line = err.splitlines()[-1]
    assert "Traceback" not in err and line.startswith("paperzoo: error: ") and expected in line, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before or name == "disk full", \
        "a refused command wrote files"


def test_a_paper_or_claim_named_twice_runs_once():
    chosen = select(load_catalog(), ["sanity", "sanity.mnist_cnn", "sanity"])
    assert [(e.post.module, [c.id for c in claims]) for e, claims in chosen] == [("sanity", ["sanity.mnist_cnn"])]


def test_compare_warns_on_schema_completeness_and_preset(tmp_path, capsys):
    claim = {"id": "a.b", "verdict": "reproduced"}
    (tmp_path / "old.json").write_text(json.dumps({"schema": 1, "complete": True, "preset": "quick",
                                                   "claims": [claim]}))
    (tmp_path / "cut.json").write_text(json.dumps({"schema": 3, "complete": False, "preset": "smoke", "claims": [
        claim], "stopped": {"signal": 15, "not_run": ["a.c", "a.d"]}}))
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "cut.json")]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, warnings
    assert "A was written with results schema 1 (this paperzoo writes 3)" in warnings[0]
    assert 'B is incomplete ("complete": false, stopped with 2 claims not run' in warnings[1]
    assert "other presets (quick -> smoke)" in warnings[2]


def test_compare_into_a_closed_pipe_ends_quietly(tmp_path, capsys, monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    (tmp_path / "a.json").write_text(_results([{"id": "a.b", "verdict": "reproduced"}]))
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert capsys.readouterr().err == ""
