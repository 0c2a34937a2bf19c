import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from engine_toy import NoisyRegression

from paperzoo.engine import TrainConfig, Trainer
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.engine.trainer import NonFiniteLossError, lr_lambda
from paperzoo.errors import ConfigError

HERE = Path(__file__).parent


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=16, optimizer="sgd", lr=0.05, schedule="step", decay_every=10, lr_decay=0.5,
                log_every=1, checkpoint_every=10, progress=False, seed=3)
    return TrainConfig(**{**base, **kw})


def test_loss_falls_and_outputs_are_written(tmp_path):
    result = Trainer(NoisyRegression(), _cfg(steps=60), out_dir=tmp_path).fit()
    _, losses = result.history.series("train", "loss")
    assert losses[-1] < 0.2 * losses[0]
    assert (tmp_path / "config.json").exists() and (tmp_path / "metrics.csv").exists()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["split"] == "eval" and rows[-1]["mse"] == pytest.approx(result.final["mse"])
    assert read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")[1]["step"] == 60


def test_same_seed_same_result_and_accumulation_matches_a_big_batch():
    a = Trainer(NoisyRegression(), _cfg(steps=5, checkpoint_every=0)).fit()
    b = Trainer(NoisyRegression(), _cfg(steps=5, checkpoint_every=0)).fit()
    assert a.final == b.final
    # without augmentation noise, 4 accumulated micro-batches of 8 make the same SGD step as one batch of 32
    big = Trainer(_Plain(), _cfg(steps=3, batch_size=32, checkpoint_every=0, optimizer="sgd", momentum=0.0)).fit()
    acc = Trainer(_Plain(), _cfg(steps=3, batch_size=8, accumulation=4, checkpoint_every=0, optimizer="sgd",
                                 momentum=0.0)).fit()
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


class _Plain(NoisyRegression):
    """No augmentation noise, so micro-batches and one big batch see identical inputs."""

    def training_step(self, model, batch):
        from paperzoo.engine import StepOutput

        x, y = batch
        return StepOutput(((model(x).squeeze(1) - y) ** 2).mean())


def test_schedules_by_hand():
    cfg = TrainConfig(steps=100, schedule="step", decay_every=10, lr_decay=0.5)
    assert [lr_lambda(cfg)(s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cfg = TrainConfig(steps=100, schedule="cosine", warmup_steps=4)
    assert lr_lambda(cfg)(0) == pytest.approx(0.25) and lr_lambda(cfg)(50) == pytest.approx(0.5)
    assert lr_lambda(TrainConfig(schedule="exponential", decay_every=10, lr_decay=0.9))(5) == pytest.approx(0.9**0.5)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    method = NoisyRegression(nan_at_call=25)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 25"):
        Trainer(method, _cfg(), out_dir=tmp_path).fit()
    tensors, meta = read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["step"] == 20 and all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model."))


def test_non_finite_weights_are_never_saved_and_the_last_finite_checkpoint_stays(tmp_path):
    """The loss is still finite when an optimizer step leaves a NaN in the weights: the step-25 save refuses, and the
    step-20 checkpoint (finite) stays, so the run can be resumed from it."""
    steps = []

    def poison_after_step_25(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 25:
            with torch.no_grad():
                next(p for group in optimizer.param_groups for p in group["params"])[0, 0] = float("nan")

    handle = register_optimizer_step_post_hook(poison_after_step_25)
    try:
        with pytest.raises(NonFiniteLossError, match="non-finite by step 25 while the loss was finite"):
            Trainer(NoisyRegression(), _cfg(checkpoint_every=5), out_dir=tmp_path).fit()
    finally:
        handle.remove()
    tensors, meta = read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["step"] == 20 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_the_final_checkpoint_is_saved_before_the_final_evaluation(tmp_path):
    class FailsInEvaluation(NoisyRegression):
        def evaluate(self, model, device):
            raise ValueError("a mistake only the evaluation catches")

    with pytest.raises(ValueError, match="only the evaluation catches"):
        Trainer(FailsInEvaluation(), _cfg(steps=12), out_dir=tmp_path).fit()
    assert read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")[1]["step"] == 12  # the training is kept


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match=r"TrainConfig\.steps must be >= 1"):
        Trainer(NoisyRegression(), _cfg(steps=0))
    with pytest.raises(ConfigError, match="larger than this rank's share"):
        Trainer(NoisyRegression(n=10), _cfg(batch_size=16)).fit()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    from engine_toy import NoisyRegression
    from paperzoo.engine import TrainConfig, Trainer

    kill_at = int(sys.argv[2])
    def maybe_die(state):
        if state.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    cfg = TrainConfig(steps=30, batch_size=16, optimizer="adam", lr=0.02, schedule="step", decay_every=7,
                      lr_decay=0.5, log_every=1, checkpoint_every=10, progress=False, seed=3)
    Trainer(NoisyRegression(), cfg, out_dir=sys.argv[1], callbacks=[maybe_die]).fit(resume=True)
""")


def test_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(here=str(HERE)))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    run = lambda out, kill_at: subprocess.run([sys.executable, str(script), str(out), str(kill_at)], env=env,  # noqa
                                              capture_output=True, text=True, timeout=120)
    killed = run(tmp_path / "a", 25)  # dies after the step-20 checkpoint, 5 steps of work lost
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")[1]["step"] == 20
    resumed = run(tmp_path / "a", -1)
    assert resumed.returncode == 0, resumed.stderr
    straight = run(tmp_path / "b", -1)
    assert straight.returncode == 0, straight.stderr

    final = lambda out: json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])  # noqa: E731
    assert final(tmp_path / "a") == final(tmp_path / "b")
    a, _ = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")
    b, _ = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for key in (k for k in a if k.startswith(("model.", "optim."))):
        assert torch.equal(a[key], b[key]), key
    # the resumed run's log has no duplicate rows from the killed run's lost steps
    steps = [json.loads(line)["step"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert steps == list(range(1, 31))


def test_a_dry_run_trains_the_first_steps_after_each_evaluation_on_the_whole_runs_schedule(monkeypatch):
    from paperzoo.engine.dry_run import DRY_RUN_ENV

    cfg = _cfg(steps=30, checkpoint_every=0, schedule="cosine", eval_every=10, log_every=4)
    full = Trainer(NoisyRegression(), cfg).fit()
    monkeypatch.setenv(DRY_RUN_ENV, "2")
    method = NoisyRegression()
    dry = Trainer(method, cfg).fit()
    # steps 1-2, 11-12, 21-22 after the evaluations, and the logged steps 4, 8, ..., 28 and the last, 30
    assert method.calls == 13 and dry.steps == 30
    steps, rates = dry.history.series("train", "lr")
    full_steps, full_rates = full.history.series("train", "lr")
    assert steps == full_steps == [4, 8, 12, 16, 20, 24, 28, 30]  # every training log of the real run
    assert rates == full_rates  # a cosine over 30 steps
    assert dry.history.series("eval", "mse")[0] == full.history.series("eval", "mse")[0] == [10, 20, 30]
