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
from paperzoo.causal_vqa.metrics import flip_metrics
from paperzoo.causal_vqa.train import CausalVQAConfig, CausalVQAMethod, edit_metrics
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import UserError

PAPER = "Agarwal, Shetty, Fritz, CVPR 2020, arXiv 1912.07538"
TRAIN_METHODS = {"causal_vqa": TrainSpec("causal_vqa", "SAAA-style VQA on generated scenes (train.augment=true adds "
                                         "the IV/CV-edited images)", CausalVQAConfig, CausalVQAMethod)}


def _config(ctx: RunContext, seed: int, augment: bool) -> CausalVQAConfig:
    steps = ctx.pick(20, 500, 6000)
    return CausalVQAConfig(
        train_examples=ctx.pick(200, 2500, 30_000), test_examples=ctx.pick(100, 600, 5000), augment=augment,
        train=TrainConfig(steps=steps, batch_size=64, lr=3e-3, schedule="cosine", log_every=50, seed=seed,
                          progress=False))


def _measure(ctx: RunContext, seed: int, augment: bool) -> dict:
    """Train one model and score it on the test scenes and all their IV and CV edits."""
    def build():
        cfg = _config(ctx, seed, augment)
        method = CausalVQAMethod(cfg)
        result = Trainer(method, cfg.train).fit()
        iv, iv_edits, iv_pairs = edit_metrics(result.model, method.test_examples, "iv", cfg.max_area)
        cv, _, _ = edit_metrics(result.model, method.test_examples, "cv", cfg.max_area)
        yes_no = [(e, p) for e, p in zip(iv_edits, iv_pairs) if p.answers_original[0] in ("yes", "no")]
        cue = [p for e, p in yes_no if e.removed_cue]
        other = [p for e, p in yes_no if not e.removed_cue]
        share = lambda ps: sum(p.pred_original != p.pred_edited for p in ps) / max(1, len(ps))  # noqa: E731
        return {"test_acc": result.final["test_acc"], "iv": iv, "cv": cv, "flips_cue_removed": share(cue),
                "flips_other_removed": share(other), "pairs_cue_removed": len(cue), "pairs_other_removed": len(other),
                "majority_acc": _majority(method)}
    return ctx.shared(f"causal_vqa/{seed}/{augment}", build)


def _majority(method: CausalVQAMethod) -> float:
    answers = [e.answer for e in method.train_examples]
    top = max(set(answers), key=answers.count)
    return sum(e.answer == top for e in method.test_examples) / len(method.test_examples)


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _run_flips(ctx: RunContext) -> Measurement:
    m = _measure(ctx, ctx.seed, augment=False)
    iv, cv = m["iv"], m["cv"]
    values = {"test_acc": round(m["test_acc"], 4), "majority_acc": round(m["majority_acc"], 4)}
    values.update({f"iv_{k}": v for k, v in _round(iv).items() if not k.endswith("_count")})
    values.update({f"cv_{k}": v for k, v in _round(cv).items() if not k.endswith("_count")})
    fig, ax = plotting.figure(6, 3)
    names = ["neg_to_pos", "pos_to_neg", "pos_to_pos", "neg_to_neg"]
    ax.bar([i - 0.2 for i in range(4)], [iv[n] for n in names], 0.4, label=f"IV ({iv['pairs']} pairs)")
    ax.bar([i + 0.2 for i in range(4)], [cv[n] for n in names], 0.4, label=f"CV ({cv['pairs']} pairs)")
    ax.set_xticks(range(4), ["neg->pos", "pos->neg", "pos->pos", "neg->neg"])
    ax.set(ylabel="share of edited pairs", title=f"flips of a VQA model (test acc {m['test_acc']:.2f})")
    ax.legend()
    return Measurement(values, [plotting.save(fig, ctx.figure_path("flips.png"))])


def _run_bias(ctx: RunContext) -> Measurement:
    m = _measure(ctx, ctx.seed, augment=False)
    values = _round({k: m[k] for k in ("flips_cue_removed", "flips_other_removed", "pairs_cue_removed",
                                       "pairs_other_removed")})
    fig, ax = plotting.figure(4.5, 3)
    ax.bar(["cue removed", "other object removed"], [m["flips_cue_removed"], m["flips_other_removed"]])
    ax.set(ylabel="flip share (yes/no questions, IV)", title="flips where the spurious cue goes")
    return Measurement(values, [plotting.save(fig, ctx.figure_path("bias.png"))])


def _run_augmentation(ctx: RunContext) -> Measurement:
    seeds = [ctx.seed + i for i in range(ctx.pick(1, 2, 3))]
    rows = {name: [_measure(ctx, s, augment) for s in seeds] for name, augment in (("base", False), ("aug", True))}
    values: dict = {"seeds": seeds}
    for name, runs in rows.items():
        for key, get in {"test_acc": lambda r: r["test_acc"], "iv_flipped": lambda r: r["iv"]["flipped"],
                         "cv_consistency": lambda r: r["cv"]["consistency"]}.items():
            xs = [get(r) for r in runs]
            values[f"{name}_{key}"] = round(statistics.mean(xs), 4)
            values[f"{name}_{key}_sd"] = round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0
    fig, axes = plotting.figure(9, 3, ncols=3)
    for ax, key in zip(axes[0], ["test_acc", "iv_flipped", "cv_consistency"]):
        ax.bar(["original only", "+ edited"], [values[f"base_{key}"], values[f"aug_{key}"]],
               yerr=[values[f"base_{key}_sd"], values[f"aug_{key}_sd"]])
        ax.set(title=key.replace("_", " "))
    return Measurement(values, [plotting.save(fig, ctx.figure_path("augmentation.png"))])


CLAIMS = [
    Claim(
        id="causal_vqa.edits_flip_answers",
        paper=PAPER,
        statement="A VQA model trained on the original scenes changes a measurable share of its answers when an "
                  "object irrelevant to the question is removed (IV), and is inconsistent when one counted object "
                  "is removed (CV), even at good accuracy.",
        paper_reports="IV flips 6.5% of pairs for SNMN (official notebook: pos->neg 2.8%, neg->pos 2.5%, neg->neg "
                      "1.1%); CV consistency far from 100% for every model",
        criterion="test_acc >= majority_acc + 0.2, IV flipped >= 2% of pairs, CV consistency <= 90%",
        run=_run_flips,
        check=lambda m: (m["test_acc"] >= m["majority_acc"] + 0.2 and m["iv_flipped"] >= 0.02
                         and m["cv_consistency"] <= 0.9),
    ),
    Claim(
        id="causal_vqa.flips_follow_bias",
        paper=PAPER,
        statement="When an irrelevant object co-occurs with an answer in training, flips concentrate on the "
                  "questions where that object is removed.",
        paper_reports="qualitative (spurious context, Sec. 1 and Fig. 1)",
        criterion="flip share when the cue is removed >= 2x the share when another irrelevant object is removed, "
                  "and >= 5 points above it (yes/no questions)",
        run=_run_bias,
        check=lambda m: (m["flips_cue_removed"] >= 2 * m["flips_other_removed"]
                         and m["flips_cue_removed"] - m["flips_other_removed"] >= 0.05),
    ),
    Claim(
        id="causal_vqa.augmentation_reduces_flips",
        paper=PAPER,
        statement="Training with the IV/CV-edited images as augmentation lowers flips and raises CV consistency "
                  "while keeping accuracy on the original images.",
        paper_reports="flips and CV inconsistency drop after fine-tuning with edited data, accuracy kept (Sec. 6)",
        criterion="mean over seeds: IV flipped(aug) < IV flipped(base), CV consistency(aug) > (base), "
                  "test_acc(aug) >= test_acc(base) - 0.02",
        run=_run_augmentation,
        check=lambda m: (m["aug_iv_flipped"] < m["base_iv_flipped"] and m["aug_cv_consistency"] > m["base_cv_consistency"]
                         and m["aug_test_acc"] >= m["base_test_acc"] - 0.02),
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
