"""Signals and worker processes (issue #37): `reproduce --jobs N` reports each claim as it finishes, a dead worker
costs only its own paper, Ctrl-C and SIGTERM stop the run and its workers and keep what finished; `train` saves a
checkpoint on SIGINT/SIGTERM that `--resume` continues exactly, and one process at a time writes into a folder.

The papers here are toy modules written by the test (claims that finish at once, wait, or kill their own worker);
the workers import them by name, as they import a real paper's experiments module."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from paperzoo.claims import run_selected
from paperzoo.cli import EXIT_USER_ERROR, main
from paperzoo.engine import Trainer, TrainConfig
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.report import worker_deaths, write_partial, write_report
from paperzoo.stopping import Stopped

SRC = Path(__file__).resolve().parent.parent / "src"
ENGINE_TESTS = Path(__file__).resolve().parent / "engine"

TOY = '''
import json, os, signal, time
from pathlib import Path
from paperzoo.catalog import Entry, Post
from paperzoo.claims import Claim, Measurement

def claim(paper, name, run):
    return Claim(id=f"{paper}.{name}", paper=paper, statement=name, paper_reports="", criterion="x > 1", run=run,
                 check=lambda m: m["x"] > 1, kind="check")

def done(ctx):
    return Measurement({"x": 2})

def seen_by_parent(ctx):
    """Waits for the parent to write the paper's first claim to results.json (it does once told of it)."""
    results = ctx.out_dir.parent.parent / "results.json"
    for _ in range(1200):
        if results.exists() and "toyfirst.first" in results.read_text():
            return Measurement({"x": 2, "seen": 1})
        time.sleep(0.1)
    return Measurement({"x": 2, "seen": 0})

def die(ctx):
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would

def wait_long(ctx):
    folder = ctx.out_dir.parent.parent
    (folder / f"worker-{os.getpid()}").write_text("")
    time.sleep(600)
    return Measurement({"x": 2})

CLAIMS = [claim("toyfirst", "first", done), claim("toyfirst", "second", seen_by_parent),
          claim("toydead", "fine", done), claim("toydead", "dies", die), claim("toydead", "after", done),
          claim("toyok", "one", done), claim("toyok", "two", done),
          claim("toyquick", "one", done), claim("toyslow1", "x", wait_long), claim("toyslow2", "x", wait_long),
          claim("toyslow3", "x", wait_long)]

def entries(*papers):
    import sys
    module = sys.modules[__name__]
    return [Entry(Post(90 + i, paper, paper, paper), module=module,
                  claims=[c for c in CLAIMS if c.id.startswith(paper + ".")]) for i, paper in enumerate(papers)]
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy papers' module, importable here and in the spawned workers (which get this sys.path)."""
    name = f"toy_papers_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(name)
    yield sys.modules[name]
    sys.modules.pop(name, None)


def _chosen(entries):
    return [(e, e.claims) for e in entries]


def test_workers_report_each_claim_as_it_finishes(tmp_path, toy):
    """The second claim of a paper waits until the parent has written the first to results.json: it sees it only
    if the worker reported the first claim before the paper finished."""
    out = tmp_path / "run"
    out.mkdir()
    results = run_selected(_chosen(toy.entries("toyfirst", "toyok")), "smoke", out, seed=0, progress=False,
                           jobs=2, threads=1, on_results=lambda done: write_partial(done, out, "smoke", 0))
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == ["toyfirst.first", "toyfirst.second", "toyok.one", "toyok.two"]
    assert by_id["toyfirst.second"].measured["seen"] == 1
    assert all(r.verdict == "reproduced" for r in results), [(r.id, r.reason) for r in results]


def test_a_dead_worker_costs_only_its_own_paper_and_the_report_says_which(tmp_path, toy):
    out = tmp_path / "run"
    out.mkdir()
    results = run_selected(_chosen(toy.entries("toydead", "toyok", "toyquick")), "smoke", out, seed=0,
                           progress=False, jobs=2, threads=1)
    verdicts = {r.id: r.verdict for r in results}
    assert verdicts == {"toydead.fine": "reproduced", "toydead.dies": "error", "toydead.after": "error",
                        "toyok.one": "reproduced", "toyok.two": "reproduced", "toyquick.one": "reproduced"}
    lost = [r for r in results if r.verdict == "error"]
    assert all("the worker process running toydead died (killed by SIGKILL" in r.reason for r in lost)
    deaths = worker_deaths(results)
    assert len(deaths) == 1 and "2 claim(s) not measured (toydead.dies, toydead.after)" in deaths[0]
    write_report(results, out, "smoke", 0, {"worker_deaths": deaths})
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] is False and saved["run"]["worker_deaths"] == deaths
    assert "Incomplete:" in (out / "report.md").read_text()


STOP_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import paperzoo.catalog as catalog
import {toy}
catalog.load_catalog = lambda: {toy}.entries("toyquick", "toyslow1", "toyslow2", "toyslow3")
from paperzoo.cli import main
if __name__ == "__main__":  # the spawned workers import this file too
    sys.exit(main(["reproduce", "--preset", "smoke", "--jobs", "2", "--threads", "1", "--out", {out!r},
                   "--no-progress"]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_a_parallel_run_and_keeps_what_finished(tmp_path, toy, signum):
    """The run starts as a terminal's foreground job does, with SIGINT at its default action: a test suite started
    in the background by a script (as CI does) inherits SIGINT ignored, and so would the run, as `nohup` intends."""
    out = tmp_path / "run"
    script = tmp_path / "stop.py"
    script.write_text(STOP_SCRIPT.format(here=str(tmp_path), toy=toy.__name__, out=str(out)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a timing
        while time.monotonic() < deadline and parent.poll() is None:
            workers = [int(p.name.split("-")[1]) for p in out.glob("worker-*")]
            if len(workers) == 2 and "toyquick.one" in (out / "results.json").read_text():
                break
            time.sleep(0.2)
        assert parent.poll() is None and len(workers) == 2, parent.communicate()
        parent.send_signal(signum)
        _, err = parent.communicate(timeout=120)  # before: Ctrl-C waited for every queued 600 s claim
    finally:
        parent.kill()
    assert parent.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}: 1 claims finished, 3 not run" in err
    assert "Traceback" not in err
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] is False and [c["id"] for c in saved["claims"]] == ["toyquick.one"]
    assert saved["stopped"] == {"signal": signum, "not_run": ["toyslow1.x", "toyslow2.x", "toyslow3.x"]}
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "a worker kept running after the run stopped"


# --- train: a checkpoint on SIGINT/SIGTERM, and exact resume -------------------------------------------------------

class SignalAt:
    """The engine tests' noisy regression, which sends this process `signum` during its `at`-th training step."""

    def __init__(self, at: int | None, signum: int = signal.SIGTERM, twice: bool = False):
        sys.path.insert(0, str(ENGINE_TESTS))
        from engine_toy import NoisyRegression

        self.inner, self.at, self.signum, self.twice = NoisyRegression(), at, signum, twice
        self.steps = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def training_step(self, model, batch):
        self.steps += 1
        if self.steps == self.at:
            os.kill(os.getpid(), self.signum)
            if self.twice:
                os.kill(os.getpid(), self.signum)
        return self.inner.training_step(model, batch)


CFG = TrainConfig(steps=12, batch_size=8, log_every=5, progress=False, device="cpu")


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_train_saves_a_checkpoint_on_a_signal_and_resumes_to_the_uninterrupted_run(tmp_path, signum):
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as info:
        Trainer(SignalAt(7, signum), CFG, out_dir=stopped, stop_on_signals=True).fit()
    assert info.value.signum == signum and "after step 7 of 12" in str(info.value)
    assert "--resume --out" in str(info.value)
    assert read_checkpoint(stopped / "checkpoints" / "last.safetensors")[1]["step"] == 7
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # given back
    Trainer(SignalAt(None), CFG, out_dir=stopped, stop_on_signals=True).fit(resume=True)
    Trainer(SignalAt(None), CFG, out_dir=straight, stop_on_signals=True).fit()
    # the row at step 10 averages steps 6-10, two of them before the stop: the same numbers as without it
    assert _rows(stopped) == _rows(straight)
    a, b = (read_checkpoint(out / "checkpoints" / "last.safetensors")[0] for out in (stopped, straight))
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model.", "optim."))), "weights differ"


def test_a_second_signal_stops_at_once_and_without_a_folder_nothing_is_saved(tmp_path):
    with pytest.raises(Stopped, match="second SIGTERM"):
        Trainer(SignalAt(3, twice=True), CFG, out_dir=tmp_path / "r", stop_on_signals=True).fit()
    with pytest.raises(Stopped, match="no run folder, nothing saved"):
        Trainer(SignalAt(3), CFG, stop_on_signals=True).fit()


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_its_config(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["train.steps=4", "train.batch_size=8", "channels=4", "train.progress=false", "train.log_every=2"]
    assert main(["train", "sanity_cnn", *tiny, "--out", str(out)]) == 0
    final = _rows(out)
    (out / "checkpoints" / "last.safetensors").unlink()  # as if killed (SIGKILL) before the checkpoint
    assert main(["train", "sanity_cnn", "--out", str(out)]) == EXIT_USER_ERROR  # a new run is still refused
    assert main(["train", "sanity_cnn", "--resume", "--out", str(out)]) == 0  # trains again from its config.json
    assert _rows(out) == final


LOCK_HOLDER = "import sys; from paperzoo.run_folders import acquire; acquire(sys.argv[1], 'train'); print('held', " \
              "flush=True); sys.stdin.read()"


@pytest.mark.parametrize("argv", [["train", "sanity_cnn", "--resume"], ["reproduce", "sanity", "--preset", "smoke"]],
                         ids=["train-resume", "reproduce"])
def test_a_second_command_on_a_folder_in_use_is_refused_at_once(tmp_path, capsys, argv):
    out = tmp_path / "run"
    if argv[0] == "train":
        assert main(["train", "sanity_cnn", "train.steps=2", "train.batch_size=8", "channels=4",
                     "train.progress=false", "--out", str(out)]) == 0
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        before = sorted(p.name for p in out.iterdir())
        assert main([*argv, "--out", str(out)]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert f"{out} is in use by another paperzoo run (pid {holder.pid}: paperzoo train" in err, err
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        holder.kill()
        holder.wait()
