"""Engine hooks: a method's parameter groups or optimizer, callbacks at log steps and evaluations (a logger of one's
own), early stopping, and the best checkpoint beside the last."""

import json

import pytest
import torch
from engine_toy import NoisyRegression

from paperzoo.engine import BestCheckpoint, EarlyStopping, TrainConfig, Trainer, TrainState, load_checkpoint
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.errors import ConfigError, UserError


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=0.05, log_every=2, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


class FrozenFirstLayer(NoisyRegression):
    """The first layer in a group of rate 0 (kept as built), the rest at twice train.lr."""

    def parameter_groups(self, model):
        return [{"params": model[0].parameters(), "lr": 0.0}, {"params": model[2].parameters(), "lr": 0.1}]


def initial_model(method, seed: int = 0):
    """The weights the trainer starts from: it seeds with train.seed, then builds the model."""
    torch.manual_seed(seed)
    return method.build_model()


def test_parameter_groups_set_each_groups_rate():
    result = Trainer(FrozenFirstLayer(), cfg(seed=0, schedule="cosine")).fit()
    start = initial_model(FrozenFirstLayer())
    assert torch.equal(result.model[0].weight, start[0].weight)  # rate 0: unchanged
    assert not torch.equal(result.model[2].weight, start[2].weight)


class MissingGroup(NoisyRegression):
    def parameter_groups(self, model):
        return [{"params": list(model[2].parameters())}]


def test_parameter_groups_must_hold_every_trainable_parameter():
    with pytest.raises(UserError, match=r"parameter_groups leaves out trainable parameters: 0\.weight, 0\.bias"):
        Trainer(MissingGroup(), cfg()).fit()


class OwnOptimizer(NoisyRegression):
    def configure_optimizer(self, model, train_cfg):
        self.seen = train_cfg
        return torch.optim.SGD(model.parameters(), lr=0.0)


def test_a_method_may_build_its_own_optimizer():
    method = OwnOptimizer()
    result = Trainer(method, cfg(optimizer="adam", lr=0.5)).fit()
    assert torch.equal(result.model[0].weight, initial_model(OwnOptimizer())[0].weight)  # its rate 0 wins
    assert method.seen.lr == 0.5

    class NotAnOptimizer(NoisyRegression):
        def configure_optimizer(self, model, train_cfg):
            return [p for p in model.parameters()]

    with pytest.raises(UserError, match="configure_optimizer must return a torch.optim Optimizer, got list"):
        Trainer(NotAnOptimizer(), cfg()).fit()


def test_callbacks_see_every_log_every_evaluation_and_the_final_one():
    seen = []

    def logger(state: TrainState):  # what a W&B or MLflow writer would receive
        seen.append((state.phase, state.step, sorted(state.metrics), state.model is not None))

    Trainer(NoisyRegression(), cfg(steps=6, log_every=2, eval_every=4), callbacks=[logger]).fit()
    train = [(step, keys) for phase, step, keys, _ in seen if phase == "train"]
    assert train == [(2, ["abs_err", "loss", "lr"]), (4, ["abs_err", "loss", "lr"]), (6, ["abs_err", "loss", "lr"])]
    assert [(p, s, k) for p, s, k, _ in seen if p != "train"] == [("eval", 4, ["mse"]), ("final", 6, ["mse"])]
    assert all(has_model for *_, has_model in seen)


class Scripted(NoisyRegression):
    """evaluate() returns the next value of `scores` as "score", and keeps a copy of the model it scored."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.models = list(scores), []

    def evaluate(self, model, device):
        self.models.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"score": self.scores[len(self.models) - 1]}


def test_early_stopping_ends_the_run_after_patience_evaluations_without_improvement(tmp_path):
    # evaluations at steps 2, 4, 6, 8: 0.5 is the best (step 4); 6 and 8 do not improve by more than 0.01
    method = Scripted([0.3, 0.5, 0.505, 0.4, 0.9, 0.9])
    stop = EarlyStopping("score", mode="max", patience=2, min_delta=0.01)
    result = Trainer(method, cfg(steps=20, eval_every=2, log_every=1), out_dir=tmp_path / "run",
                     callbacks=[stop]).fit()
    assert (stop.best, stop.best_step, stop.stopped_step) == (0.5, 4, 8)
    assert result.steps == 8 and result.final == {"score": 0.4}  # the evaluation of step 8, not a second one
    assert len(method.models) == 4
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")[1]["step"] == 8
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows if r["split"] == "train") == 8
    assert [r["step"] for r in rows if r["split"] == "eval"] == [2, 4, 6, 8]


def test_early_stopping_on_a_falling_metric_and_its_errors():
    stop = EarlyStopping("loss", mode="min", patience=1, phase="train")
    for step, loss in [(1, 3.0), (2, 2.0), (3, 2.5)]:
        state = TrainState(step, {"loss": loss}, "train")
        stop(state)
    assert state.stop and (stop.best, stop.best_step, stop.stopped_step) == (2.0, 2, 3)
    with pytest.raises(ConfigError, match="metric 'acc' is not among the eval metrics at step 5: mse"):
        EarlyStopping("acc")(TrainState(5, {"mse": 1.0}, "eval"))
    with pytest.raises(ConfigError, match="mode must be 'max' or 'min'"):
        EarlyStopping("acc", mode="up")


def test_best_checkpoint_keeps_the_model_of_the_best_evaluation(tmp_path):
    method = Scripted([0.2, 0.7, 0.4, 0.6])  # evaluations at 3, 6, 9 and the final one at 12
    best = BestCheckpoint("score")
    out = tmp_path / "run"
    Trainer(method, cfg(steps=12, eval_every=3), out_dir=out, callbacks=[best]).fit()
    path = out / "checkpoints" / "best.safetensors"
    assert best.written == path and (best.best, best.best_step) == (0.7, 6)
    tensors, meta = read_checkpoint(path)
    assert meta["step"] == 6 and meta["extra"] == {"metric": "score", "value": 0.7, "mode": "max"}
    model = method.build_model()
    load_checkpoint(path, model=model)
    for name, value in model.state_dict().items():
        assert torch.equal(value, method.models[1][name]), name  # the weights scored at step 6
    assert not torch.equal(model.state_dict()["0.weight"], method.models[3]["0.weight"])  # not the last ones
    assert (out / "checkpoints" / "last.safetensors").exists()


def test_best_checkpoint_without_a_run_folder_writes_nothing_and_can_take_a_path(tmp_path):
    best = BestCheckpoint("score", mode="min")
    Trainer(Scripted([0.5, 0.1, 0.3]), cfg(steps=6, eval_every=2), callbacks=[best]).fit()
    assert best.written is None and (best.best, best.best_step) == (0.1, 4)
    chosen = BestCheckpoint("score", mode="min", path=tmp_path / "mine.safetensors")
    Trainer(Scripted([0.5, 0.1, 0.3]), cfg(steps=6, eval_every=2), callbacks=[chosen]).fit()
    assert read_checkpoint(tmp_path / "mine.safetensors")[1]["step"] == 4


def test_without_callbacks_or_hooks_the_run_is_unchanged():
    """The default path: the same weights as before the hooks existed (a run with a callback that never stops
    trains the same weights too)."""
    plain = Trainer(NoisyRegression(), cfg(seed=3)).fit()
    watched = Trainer(NoisyRegression(), cfg(seed=3), callbacks=[lambda state: None]).fit()
    for (name, a), b in zip(plain.model.state_dict().items(), watched.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert plain.steps == 12
