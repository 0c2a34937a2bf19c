"""Claims of "Towards Causal VQA: Revealing and Reducing Spurious Correlations by Invariant and Covariant Semantic
Editing" (Agarwal, Shetty, Fritz, CVPR 2020, arXiv 1912.07538), on generated scenes where object removal is exact,
plus the `vqa-flips` verb that scores anyone's real results with the paper's counting rules.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from paperzoo import plotting
from paperzoo.catalog import CliVerb, TrainSpec
from paperzoo.causal_vqa.files import match_pairs, read_results
from paperzoo.causal_vqa.metrics import flip_metrics, flipped_when_right
from paperzoo.causal_vqa.data import Example, edits_of, make_examples
from paperzoo.causal_vqa.train import CausalVQAConfig, CausalVQAMethod, cue_reliance, edit_metrics, edit_pairs
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.criteria import Effect, Precondition, all_of, at_least, at_most, beats, decide, no_worse
from paperzoo.engine.distributed import derive_seed
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import UserError

PAPER = "Agarwal, Shetty, Fritz, CVPR 2020, arXiv 1912.07538"
TRAIN_METHODS = {"causal_vqa": TrainSpec("causal_vqa", "SAAA-style VQA on generated scenes (augment=true adds "
                                         "the IV/CV-edited images)", CausalVQAConfig, CausalVQAMethod)}


CUE_BIAS = 0.9  # P(cue | yes) = P(no cue | no) in the training (and test) scenes, fixed before judging the bias
# claim so that the model learns the cue: at 0.75 its cue reliance was ~0 on 3 seeds. With the cue white (the
# gray one was hard to see, and learned on some seeds only) pilots at 0.9 gave reliance >= 0.98 on 6 of 6 seeds;
# the cue-reliance precondition checks it on every run (docs/causal_vqa.md)


OBJECT_LOSS = 1.0  # the per-cell object loss, and the attention mass for the classifier: a model that counts
# (pilots in docs/results/protocol-changes.md, 2026-12-06, issue 34: plain SAAA stayed at 22-26% on the CV
# originals; with both, 31% at 800 steps and 68% at 2,400)
STANDARD_STEPS = 2400


FINE_TUNE_SHARE = 0.5  # the fine-tunes take half the steps of the model they start from
FINE_TUNE_LR = 1e-3  # a third of training's rate: they start from a trained model (pilot in protocol-changes.md)


def _config(ctx: RunContext, seed: int, augment: bool, blind: bool = False, fine_tune: bool = False
            ) -> CausalVQAConfig:
    steps = ctx.pick(20, 800, 6000, standard=STANDARD_STEPS)
    return CausalVQAConfig(
        train_examples=ctx.pick(200, 8000, 30_000), test_examples=ctx.pick(100, 600, 5000), augment=augment,
        blind=blind, cue_bias=CUE_BIAS, object_loss=OBJECT_LOSS, count_features=True,
        data_seed=derive_seed(seed, 0) % 2**31,
        train=TrainConfig(steps=int(steps * FINE_TUNE_SHARE) if fine_tune else steps, batch_size=64,
                          lr=FINE_TUNE_LR if fine_tune else 3e-3, schedule="cosine", log_every=50, seed=seed,
                          progress=False))


def _blind(ctx: RunContext, seed: int) -> dict:
    """The question-only baseline (the same model and data, every image blank): its test accuracy, and the test
    questions it gets wrong. Those are the image-dependent questions: their answer cannot be told from the question
    alone, so a flip there is a change of what the model reads in the image."""
    def build():
        cfg = _config(ctx, seed, augment=False, blind=True)
        method = CausalVQAMethod(cfg)
        model = Trainer(method, cfg.train).fit().model
        wrong = (method.test_predictions(model) != method.test_answers()).nonzero().flatten().tolist()
        return {"test_acc": 1 - len(wrong) / len(method.test_examples), "image_dependent": frozenset(wrong)}
    return ctx.shared(f"causal_vqa/{seed}/blind", build)


def _blind_acc(ctx: RunContext, seed: int) -> float:
    return _blind(ctx, seed)["test_acc"]


def _cue_probe(cfg: CausalVQAConfig) -> list[Example]:
    """Scenes drawn like the test scenes but held out from every flip evaluation (their own seed), on which cue
    reliance is measured: the precondition of `flips_follow_bias` is then shown on other pairs than the flips it
    judges, so it does not imply them."""
    return make_examples(cfg.test_examples, cfg.data_seed + 20_000, cfg.cue_bias, cfg.image_size)


def _measure(ctx: RunContext, seed: int, fine_tune: str = "") -> dict:
    """Train one model and score it on the test scenes, the IV edits of its image-dependent questions, all CV
    edits (removing a counted object changes the answer: every CV question depends on the image), and the cue
    (on held-out scenes). `fine_tune` "": the model trained on the originals, every claim's (its weights are kept);
    "originals" or "edits": that model fine-tuned on the originals alone or with the edited images (Sec. 6)."""
    def build():
        cfg = _config(ctx, seed, augment=fine_tune == "edits", fine_tune=bool(fine_tune))
        method = CausalVQAMethod(cfg, init=_measure(ctx, seed)["weights"] if fine_tune else None)
        model = Trainer(method, cfg.train).fit().model
        dependent = _blind(ctx, seed)["image_dependent"]
        correct = (method.test_predictions(model) == method.test_answers()).tolist()
        iv_edits = [e for e in edits_of(method.test_examples, "iv", cfg.max_area) if e.source in dependent]
        iv_pairs = edit_pairs(model, method.test_examples, iv_edits)
        cv, _, _ = edit_metrics(model, method.test_examples, "cv", cfg.max_area)
        yes_no = [(e, p) for e, p in zip(iv_edits, iv_pairs) if p.answers_original[0] in ("yes", "no")]
        cue = [p for e, p in yes_no if e.removed_cue]
        other = [p for e, p in yes_no if not e.removed_cue]
        share = lambda ps: sum(p.pred_original != p.pred_edited for p in ps) / max(1, len(ps))  # noqa: E731
        iv = flip_metrics("iv", iv_pairs)
        return {"test_acc": sum(correct) / len(correct), "iv": iv, "cv": cv,
                "iv_flipped_when_right": flipped_when_right(iv),
                "image_dependent_acc": sum(correct[i] for i in dependent) / max(1, len(dependent)),
                "image_dependent_questions": len(dependent), "flips_cue_removed": share(cue),
                "flips_other_removed": share(other), "pairs_cue_removed": len(cue), "pairs_other_removed": len(other),
                **cue_reliance(model, _cue_probe(cfg)),
                "weights": None if fine_tune else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return ctx.shared(f"causal_vqa/{seed}/{fine_tune or 'base'}", build)


USES_IMAGE_MARGIN = 0.05


def _uses_image(key: str = "test_acc", who: str = "the model") -> Precondition:
    return Precondition(
        f"{who} uses the image: its test accuracy beats the question-only (blind) baseline's by > "
        f"{USES_IMAGE_MARGIN * 100:.0f} points, paired over seeds",
        lambda m: beats(f"{who}: accuracy - blind accuracy", m[key], m["blind_acc"], USES_IMAGE_MARGIN,
                        effect=Effect(USES_IMAGE_MARGIN, "the precondition's own margin")))


def _run_flips(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        m = _measure(ctx, seed)
        return {"test_acc": m["test_acc"], "blind_acc": _blind_acc(ctx, seed),
                "image_dependent_acc": m["image_dependent_acc"], "iv_flipped": m["iv"]["flipped"],
                "iv_flipped_when_right": m["iv_flipped_when_right"], "iv_pairs": m["iv"]["pairs"],
                "cv_consistency": m["cv"]["consistency"], "cv_accuracy_original": m["cv"]["accuracy_original"],
                "cv_pairs": m["cv"]["pairs"]}

    per_seed = ctx.over_seeds(measure, "VQA models")
    first = _measure(ctx, ctx.seeds[0])
    iv, cv = first["iv"], first["cv"]
    values = {f"iv_{k}_first_seed": v for k, v in _round(iv).items() if not k.endswith("_count")}
    values.update({f"cv_{k}_first_seed": v for k, v in _round(cv).items() if not k.endswith("_count")})
    fig, ax = plotting.figure(6, 3)
    names = ["neg_to_pos", "pos_to_neg", "pos_to_pos", "neg_to_neg"]
    ax.bar([i - 0.2 for i in range(4)], [iv[n] for n in names], 0.4, label=f"IV ({iv['pairs']} pairs)")
    ax.bar([i + 0.2 for i in range(4)], [cv[n] for n in names], 0.4, label=f"CV ({cv['pairs']} pairs)")
    ax.set_xticks(range(4), ["neg->pos", "pos->neg", "pos->pos", "neg->neg"])
    ax.set(ylabel="share of edited pairs", title=f"flips of a VQA model (first seed, test acc "
                                                 f"{first['test_acc']:.2f})")
    ax.legend()
    return Measurement(values, [plotting.save(fig, ctx.figure_path("flips.png"))], per_seed=per_seed)


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _run_bias(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        m = _measure(ctx, seed)
        return {"test_acc": m["test_acc"], "blind_acc": _blind_acc(ctx, seed), "cue_reliance": m["cue_reliance"],
                **{k: m[k] for k in ("flips_cue_removed", "flips_other_removed", "pairs_cue_removed",
                                     "pairs_other_removed")}}

    per_seed = ctx.over_seeds(measure, "VQA models")
    fig, axes = plotting.figure(8, 3, ncols=2)
    ax_flips, ax_cue = axes[0]
    ax_flips.bar(["cue removed", "other object removed"],
                 [statistics.fmean(per_seed["flips_cue_removed"]), statistics.fmean(per_seed["flips_other_removed"])])
    ax_flips.set(ylabel="flip share (yes/no questions, IV)", title=f"flips (mean of {len(ctx.seeds)} seeds)")
    ax_cue.bar(range(len(ctx.seeds)), per_seed["cue_reliance"])
    ax_cue.axhline(CUE_RELIANCE, color="crimson", ls="--", label="precondition")
    ax_cue.set(xlabel="seed", ylabel="acc(cue agrees) - acc(cue disagrees)", title="does the model use the cue?")
    ax_cue.legend()
    return Measurement({"cue_bias_in_training": CUE_BIAS}, [plotting.save(fig, ctx.figure_path(
        "bias.png"))], per_seed=per_seed)


CUE_RELIANCE = 0.05
BIAS_GAP = Effect(0.05, "the claim's own margin: 5 points of flip share")
BIAS_RATIO = Effect(0.0, "the claim's own allowance (twice the other share) is in the threshold")
FEWER_FLIPS = Effect(0.01, "a practical bound: 1 point of flipped pairs (the paper's drops are a few points, Sec. 6)")
MORE_CONSISTENT = Effect(0.02, "a practical bound: 2 points of CV consistency")
ACCURACY_KEPT = Effect(0.02, "a practical bound: a loss of 2 points of test accuracy would matter")


def _check_bias(m: dict):
    twice = [c - 2 * o for c, o in zip(m["flips_cue_removed"], m["flips_other_removed"])]
    return decide(beats("flip share, cue - other object removed", m["flips_cue_removed"], m["flips_other_removed"],
                        0.05, effect=BIAS_GAP),
                  at_least("flip share, cue - 2 x other", twice, 0.0, effect=BIAS_RATIO))


def _run_augmentation(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        row = {"blind_acc": _blind_acc(ctx, seed)}
        for name, fine_tune in (("control", "originals"), ("aug", "edits")):
            m = _measure(ctx, seed, fine_tune)
            row.update({f"{name}_test_acc": m["test_acc"], f"{name}_image_dependent_acc": m["image_dependent_acc"],
                        f"{name}_iv_flipped": m["iv"]["flipped"],
                        f"{name}_cv_consistency": m["cv"]["consistency"],
                        f"{name}_cv_accuracy_original": m["cv"]["accuracy_original"]})
        return row

    per_seed = ctx.over_seeds(measure, "VQA models")
    fig, axes = plotting.figure(9, 3, ncols=3)
    for ax, key in zip(axes[0], ["test_acc", "iv_flipped", "cv_consistency"]):
        means = [statistics.fmean(per_seed[f"{name}_{key}"]) for name in ("control", "aug")]
        ax.bar(["fine-tuned on originals", "+ edited"], means)
        for i, name in enumerate(("control", "aug")):
            ax.scatter([i] * len(ctx.seeds), per_seed[f"{name}_{key}"], color="black", s=10, zorder=3)
        if key == "test_acc":
            ax.axhline(statistics.fmean(per_seed["blind_acc"]), color="grey", ls="--", label="question only")
            ax.legend()
        ax.set(title=key.replace("_", " "))
    return Measurement({}, [plotting.save(fig, ctx.figure_path("augmentation.png"))], per_seed=per_seed)


def _check_augmentation(m: dict):
    return decide(beats("IV flipped, control - augmented", m["control_iv_flipped"], m["aug_iv_flipped"],
                        effect=FEWER_FLIPS),
                  beats("CV consistency, augmented - control", m["aug_cv_consistency"], m["control_cv_consistency"],
                        effect=MORE_CONSISTENT),
                  no_worse("test accuracy, augmented - control", m["aug_test_acc"], m["control_test_acc"],
                           effect=ACCURACY_KEPT))


CV_MEANINGFUL_ACCURACY = 0.5
GOOD_ACCURACY = 0.5
IV_FLIPS_WHEN_RIGHT = 0.02
CV_CONSISTENCY_AT_MOST = 0.9


def _reads_the_image_well() -> Precondition:
    return Precondition(
        f"the model is good at what the claim is about ('even at good accuracy'): it answers >= "
        f"{GOOD_ACCURACY:.0%} of the image-dependent questions right over seeds (each seed scores its own test "
        f"scenes), where the question-only baseline scores 0; a weak model guesses there, and any edit changes a "
        f"guess, so its flips are no evidence",
        lambda m: at_least("image-dependent accuracy", m["image_dependent_acc"], GOOD_ACCURACY))


def _can_count(*who: str) -> Precondition:
    prefixes = who or ("",)
    return Precondition(
        f"{'both models' if who else 'the model'} can count, so CV consistency means something: accuracy on the CV "
        f"questions' originals >= {CV_MEANINGFUL_ACCURACY:.0%} over seeds (each seed scores its own test scenes)",
        lambda m: all_of(*(at_least(f"{p or 'the model'} CV originals accuracy".lstrip(),
                                    m[f"{p}_cv_accuracy_original" if p else "cv_accuracy_original"],
                                    CV_MEANINGFUL_ACCURACY) for p in prefixes)))


CLAIMS = [
    Claim(
        id="causal_vqa.edits_flip_answers",
        paper=PAPER,
        statement="A VQA model trained on the original scenes changes a measurable share of its answers when an "
                  "object irrelevant to the question is removed (IV), even at good accuracy.",
        paper_reports="IV flips 6.5% of pairs for SNMN (official notebook: pos->neg 2.8%, neg->pos 2.5%, neg->neg "
                      "1.1%)",
        criterion=f"over seeds (95% t-intervals), on the image-dependent questions (those the question-only "
                  f"baseline gets wrong): of the IV pairs whose original the model answers right, >= "
                  f"{IV_FLIPS_WHEN_RIGHT:.0%} flip (an absolute threshold below the paper's: SNMN turns 2.8% of all "
                  f"its pairs from right to wrong)",
        run=_run_flips,
        kind="empirical",
        check=lambda m: at_least("IV flipped share of right answers (image-dependent)", m["iv_flipped_when_right"],
                                 IV_FLIPS_WHEN_RIGHT),
        preconditions=(_uses_image(), _reads_the_image_well()),
    ),
    Claim(
        id="causal_vqa.counts_inconsistent",
        paper=PAPER,
        statement="A VQA model trained on the original scenes is inconsistent when one counted object is removed "
                  "(CV): its count does not drop by one.",
        paper_reports="CV consistency far from 100% for every model (Sec. 4)",
        criterion=f"over seeds (95% t-intervals): CV consistency <= {CV_CONSISTENCY_AT_MOST:.0%} of all CV pairs (an "
                  f"absolute threshold for 'far from 100%')",
        run=_run_flips,
        kind="empirical",
        check=lambda m: at_most("CV consistency", m["cv_consistency"], CV_CONSISTENCY_AT_MOST),
        preconditions=(_uses_image(), _can_count()),
    ),
    Claim(
        id="causal_vqa.flips_follow_bias",
        paper=PAPER,
        statement="When an irrelevant object co-occurs with an answer in training, flips concentrate on the "
                  "questions where that object is removed.",
        paper_reports="qualitative (spurious context, Sec. 1 and Fig. 1)",
        criterion="paired over seeds (95% t-intervals), image-dependent yes/no questions: flip share when the cue is "
                  "removed - share when another irrelevant object is removed > 0.05, and cue share - 2 x other "
                  "share >= 0",
        run=_run_bias,
        check=_check_bias,
        kind="empirical",
        preconditions=(_uses_image(), Precondition(
            f"the model learned the spurious cue: asked every yes/no question of held-out scenes (not those whose "
            f"flips are judged) that has the cue, with and without it, its accuracy where the cue's presence agrees "
            f"with the answer exceeds that where it disagrees by >= {CUE_RELIANCE * 100:.0f} points over seeds",
            lambda m: at_least("cue reliance", m["cue_reliance"], CUE_RELIANCE))),
    ),
    Claim(
        id="causal_vqa.augmentation_reduces_flips",
        paper=PAPER,
        statement="Fine-tuning with the IV/CV-edited images as augmentation lowers flips and raises CV consistency "
                  "while keeping accuracy on the original images.",
        paper_reports="flips and CV inconsistency drop after fine-tuning with edited data, accuracy kept (Sec. 6)",
        criterion="paired over seeds (95% t-intervals), both models fine-tuned from the model trained on the "
                  "originals, for the same steps on the same number of images, the control on the originals alone: "
                  "IV flipped on image-dependent questions, control - aug > 0; CV consistency, aug - control > 0; "
                  "test_acc(aug) - test_acc(control) >= -0.02 (non-inferiority; not met when wholly below 0); "
                  "smallest effects 1 point of flips and 2 of consistency (practical bounds); Holm over the three",
        run=_run_augmentation,
        check=_check_augmentation,
        kind="empirical",
        preconditions=(_uses_image("control_test_acc", "the model fine-tuned on originals"),
                       _uses_image("aug_test_acc", "the model fine-tuned with edits"),
                       _can_count("control", "aug")),
    ),
]


# the `paperzoo vqa-flips` verb ---------------------------------------------------------------------------------------
def _add_arguments(parser) -> None:
    parser.add_argument("--kind", choices=["iv", "cv"], required=True, help="IV-VQA (invariant) or CV-VQA (counting)")
    parser.add_argument("--original", type=Path, required=True, help="results on the original questions (VQA format)")
    parser.add_argument("--edited", type=Path, required=True, help="results on the edited questions (VQA format)")
    parser.add_argument("--annotations", type=Path, required=True,
                        help="VQA annotations of original and edited questions; edited ones carry original_question_id")
    parser.add_argument("--mapping", type=Path, help="optional JSON {edited_question_id: original_question_id}")
    parser.add_argument("--allow-unmatched", action="store_true", help="skip edited ids that match nothing")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _run_verb(args) -> int:
    matched = match_pairs(read_results(args.original), read_results(args.edited), args.annotations, args.mapping)
    skipped = sum(matched.skipped.values())
    if skipped and not args.allow_unmatched:
        detail = "; ".join(f"{v} {k}" for k, v in matched.skipped.items())
        raise UserError(f"{skipped} edited result(s) did not match ({detail}); {len(matched.pairs)} matched. "
                        "Fix the files or pass --allow-unmatched to score the matched ones")
    metrics = flip_metrics(args.kind, matched.pairs)
    metrics["skipped"] = skipped
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"{args.kind.upper()}-VQA: {len(matched.pairs)} edited pairs matched, {skipped} skipped")
    for key, value in metrics.items():
        if not key.endswith("_count") and isinstance(value, float):
            count = metrics.get(f"{key}_count")
            print(f"  {key:>20}: {100 * value:6.2f}%" + (f"  ({count})" if count is not None else ""))
    if "excluded_non_numeric_count" in metrics:
        print(f"  {'non-numeric edited':>20}: {metrics['excluded_non_numeric_count']} (excluded from consistency)")
    return 0


CLI_VERBS = {"vqa-flips": CliVerb("vqa-flips", "IV/CV-VQA flip metrics of real VQA results (paper's rules)",
                                  _add_arguments, _run_verb)}
