"""How large each `paperzoo train` method's evaluation is, and the one knob that sizes it: `eval.examples=N`.

Every evaluation of a run (`train.eval_every`, and the final one) measures the method's held-out metrics; what it
measures and on how many examples differs by method. `EVALUATIONS` states it for every method (shown by `paperzoo
train METHOD --help`), and, where the method's evaluation has a size setting of its own (`n_test`, `test_examples`,
`data.test_episodes`), `eval.examples=N` sets it to N held-out examples: the same knob for every method, translated
into the method's key on the command line, so a run's `config.json` holds the method's own setting. A method whose
held-out set is fixed (the 1,000 test digits of MNIST-5k) or that evaluates nothing says so, and refuses the knob.
"""

from __future__ import annotations

import functools
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

from paperzoo import config
from paperzoo.errors import ConfigError

KNOB = "eval.examples"


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation of a method measures (`what`), and the method's config `key` that `eval.examples` sets
    (None: the size is fixed). `per_unit(cfg)`: held-out examples per unit of `key` (episodes of a few-shot
    evaluation hold way x queries examples), `minimum` the smallest value `key` takes."""

    what: str
    key: str | None = None
    per_unit: Callable[[Any], int] = lambda cfg: 1
    minimum: int = 1

    def units(self, cfg: Any, examples: int) -> int:
        """The value of `key` for `examples` held-out examples (rounded up to whole units)."""
        return max(self.minimum, math.ceil(examples / self.per_unit(cfg)))


MNIST_TEST = "test accuracy on the 1,000 held-out digits of the 5,000 real MNIST digits (a fixed set)"
GBLEND = ("accuracy and loss on AV-digits' validation split (data.val_fraction of the training speakers' examples) "
          "and test split (the data.test_speaker_fraction held-out speakers), and the training loss on "
          "train_eval_size training examples; the splits' sizes follow the data.* settings")
FEW_SHOT = Evaluation(
    "mean accuracy over data.test_episodes meta-test episodes for each shot count of data.test_shots, each episode "
    "with data.test_way x data.test_queries query examples (eval.examples=N: N query examples per shot count, "
    "rounded up to whole episodes, at least 2)",
    "data.test_episodes", lambda cfg: cfg.data.test_way * cfg.data.test_queries, minimum=2)
NOTHING = Evaluation("nothing held out: `paperzoo train` gives this step no evaluation data (no eval metrics)")

EVALUATIONS: dict[str, Evaluation] = {
    "sanity_cnn": Evaluation(MNIST_TEST),
    "rank_augment_mnist": Evaluation(MNIST_TEST),
    "vit_registers": Evaluation("test accuracy on the first n_test test images of `dataset` (all of them when it "
                                "holds fewer)", "n_test"),
    "capsnet": Evaluation("test accuracy on the first test_examples held-out digits (at most MNIST-5k's 1,000; "
                          "with affine_test also on their warped copies); task=multimnist: on test_examples "
                          "overlapping pairs", "test_examples"),
    "capsnet_baseline": Evaluation("as capsnet's: the first test_examples held-out digits (task=multimnist: "
                                   "test_examples overlapping pairs)", "test_examples"),
    "squeezetime": Evaluation("accuracy on n_test moving-digit test clips (data=moving_digits); with data=folder, "
                              "on every clip of val_root (a fixed set) and eval.examples does not apply", "n_test"),
    "protonet": FEW_SHOT,
    "maml": FEW_SHOT,
    "fewshot_transfer": FEW_SHOT,
    "gblend_naive": Evaluation(GBLEND),
    "gblend_unimodal": Evaluation(GBLEND),
    "gblend_offline": Evaluation(GBLEND),
    "gblend_online": Evaluation(GBLEND),
    "gblend_ogm": Evaluation(GBLEND),
    "causal_vqa": Evaluation("test accuracy on test_examples generated scenes and questions", "test_examples"),
    "multiview_ssl": Evaluation("1-NN, kNN and linear probes fit on every training image and scored on every test "
                                "image of `dataset` (mnist: 4,000 / 1,000; fashion-mnist: 60,000 / 10,000), on the "
                                "frozen encoder and on raw pixels (a fixed set)"),
    "dpo_sft": NOTHING,
    "dpo_reward": NOTHING,
    "dpo": NOTHING,
    "dpo_rl": Evaluation("nothing: the RL step logs its training reward and KL, and has no held-out metric"),
}


def help_text(method: str, cfg: Any, width: int = 100) -> str:
    """The evaluation paragraph of `paperzoo train METHOD --help`: what it measures and the knob's state."""
    evaluation = EVALUATIONS[method]
    if evaluation.key is None:
        knob = f"{KNOB} does not apply: the size is fixed"
    else:
        default = functools.reduce(getattr, evaluation.key.split("."), cfg) * evaluation.per_unit(cfg)
        knob = f"{KNOB}=N: N held-out examples, through {evaluation.key} (default: {default:,})"
    return "\n".join(["evaluation (each `train.eval_every` steps and at the end):",
                      *textwrap.wrap(evaluation.what, width, initial_indent="  ", subsequent_indent="  "),
                      f"  {knob}"])


def translate(method: str, make_config: Callable[[], Any], overrides: list[str]) -> list[str]:
    """`overrides` with each `eval.examples=N` replaced, in place, by the method's own `key=value`; a method without
    a size setting, or N that is not a positive integer, is a `ConfigError`."""
    if not any(item.split("=", 1)[0].strip() == KNOB for item in overrides):
        return overrides
    evaluation = EVALUATIONS[method]
    if evaluation.key is None:
        raise ConfigError(f"{KNOB} does not apply to {method}, whose evaluation is fixed: {evaluation.what}")
    others = [item for item in overrides if item.split("=", 1)[0].strip() != KNOB]
    cfg = config.apply_overrides(make_config(), others)  # way and queries of a few-shot evaluation
    out = []
    for item in overrides:
        key, _, text = item.partition("=")
        if key.strip() != KNOB:
            out.append(item)
            continue
        try:
            examples = int(text)
        except ValueError:
            examples = 0
        if examples < 1:
            raise ConfigError(f"{KNOB} must be a positive integer (held-out examples per evaluation), got {text!r}")
        out.append(f"{evaluation.key}={evaluation.units(cfg, examples)}")
    return out
