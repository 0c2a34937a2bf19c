"""`eval.examples=N`, the one knob that sizes a train method's evaluation, and the evaluation paragraph of
`paperzoo train METHOD --help` (`paperzoo.eval_sizes`)."""

import json

import pytest

from paperzoo import config
from paperzoo.catalog import load_catalog
from paperzoo.cli import EXIT_USER_ERROR, main
from paperzoo.engine.trainer import Trainer
from paperzoo.errors import ConfigError
from paperzoo.eval_sizes import EVALUATIONS, translate

SPECS = {name: spec for entry in load_catalog() for name, spec in entry.train_methods.items()}


def test_every_train_method_states_its_evaluation_and_its_size_key_exists():
    assert set(EVALUATIONS) == set(SPECS)
    for name, evaluation in EVALUATIONS.items():
        if evaluation.key is not None:
            assert evaluation.key in config.field_names(SPECS[name].config()), name
            assert evaluation.key in evaluation.what, name  # the statement names the setting it follows


def test_the_knob_becomes_the_methods_own_key_in_place():
    spec = SPECS["vit_registers"]
    assert translate("vit_registers", spec.config, ["depth=2", "eval.examples=37"]) == ["depth=2", "n_test=37"]
    # a later value wins, as for any key: the knob after n_test, n_test after the knob
    assert config.apply_overrides(spec.config(), translate("vit_registers", spec.config,
                                                           ["n_test=5", "eval.examples=40"])).n_test == 40
    assert config.apply_overrides(spec.config(), translate("vit_registers", spec.config,
                                                           ["eval.examples=40", "n_test=5"])).n_test == 5
    assert translate("capsnet", SPECS["capsnet"].config, ["eval.examples=300"]) == ["test_examples=300"]


def test_few_shot_examples_are_rounded_up_to_whole_episodes_of_way_times_queries():
    make = SPECS["protonet"].config  # 5-way, 15 queries: 75 query examples per episode
    assert translate("protonet", make, ["eval.examples=150"]) == ["data.test_episodes=2"]
    assert translate("protonet", make, ["eval.examples=151"]) == ["data.test_episodes=3"]
    assert translate("protonet", make, ["eval.examples=10"]) == ["data.test_episodes=2"]  # the interval needs 2
    # way and queries set in the same command count: 3-way, 4 queries = 12 per episode
    assert translate("fewshot_transfer", SPECS["fewshot_transfer"].config,
                     ["data.test_way=3", "eval.examples=60", "data.test_queries=4"]) \
        == ["data.test_way=3", "data.test_episodes=5", "data.test_queries=4"]


def test_a_fixed_evaluation_or_a_bad_value_is_one_clear_error(capsys):
    with pytest.raises(ConfigError, match="eval.examples does not apply to sanity_cnn, whose evaluation is fixed: "
                                          "test accuracy on the 1,000 held-out digits"):
        translate("sanity_cnn", SPECS["sanity_cnn"].config, ["eval.examples=100"])
    for bad in ("0", "-3", "1e3", "abc"):
        with pytest.raises(ConfigError, match=f"eval.examples must be a positive integer .*got '{bad}'"):
            translate("causal_vqa", SPECS["causal_vqa"].config, [f"eval.examples={bad}"])
    assert main(["train", "dpo", "eval.examples=5"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("paperzoo: error: eval.examples does not apply to dpo") and err.count("\n") == 1


@pytest.mark.parametrize("name", sorted(SPECS))
def test_help_states_the_evaluation_and_the_knob(name, capsys):
    assert main(["train", name, "--help"]) == 0
    out = capsys.readouterr().out
    evaluation = EVALUATIONS[name]
    paragraph = out[out.index("evaluation (each `train.eval_every` steps and at the end):"):out.index("keys of")]
    assert " ".join(paragraph.split()).count(" ".join(evaluation.what.split())) == 1
    if evaluation.key is None:
        assert "eval.examples does not apply: the size is fixed" in paragraph
    else:
        assert f"eval.examples=N: N held-out examples, through {evaluation.key} (default: " in paragraph


def test_help_gives_the_default_size_in_examples(capsys):
    main(["train", "protonet", "--help"])
    assert "through data.test_episodes (default: 45,000)" in capsys.readouterr().out  # 600 episodes x 5 x 15
    main(["train", "vit_registers", "--help"])
    assert "through n_test (default: 2,000)" in capsys.readouterr().out


def test_the_evaluation_of_a_run_uses_that_many_examples(tmp_path, monkeypatch):
    """Every example an evaluation feeds the model is counted (a forward hook around the trainer's evaluation)."""
    seen = []
    evaluate = Trainer._evaluate

    def counted(self, model, device):
        handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
        try:
            return evaluate(self, model, device)
        finally:
            handle.remove()

    monkeypatch.setattr(Trainer, "_evaluate", counted)
    out = tmp_path / "run"
    assert main(["train", "vit_registers", "eval.examples=37", "depth=1", "embed_dim=16", "n_train=64",
                 "train.steps=2", "train.batch_size=16", "train.progress=false", "--out", str(out)]) == 0
    assert sum(seen) == 37
    assert json.loads((out / "config.json").read_text())["n_test"] == 37  # the run records the method's own key
