"""Flip metrics of "Towards Causal VQA" (Agarwal et al., CVPR 2020, arXiv 1912.07538, Sec. 4), counted as the
official notebooks do (AgarwalVedika/CausalVQA, flip_accuracy_cal_iv_vqa.ipynb and flip_accuracy_cal_cv_vqa.ipynb).

Every edited question is paired with its original question (one original may have several edited images); the
prediction on the original is repeated for each of its edited pairs, and every share is over the number of pairs.

IV-VQA (the answer should not change):
  flipped = pred_original != pred_edited. A prediction is right when it equals any of the ten human answers
  ("one answer match is good") of the edited question: the notebook judges both predictions of a pair against the
  edited question's answers, so an unflipped pair is either both right or both wrong. Flips split into neg->pos
  (wrong -> right), pos->neg (right -> wrong), pos->pos (both right: possible with several human answers) and
  neg->neg; unflipped pairs into both right / both wrong. Accuracy is the standard VQA accuracy
  min(#humans who gave the answer / 3, 1), of each prediction against its own question's answers.
CV-VQA (a counting answer should drop by one):
  the ground truth is the first human answer (the notebook keeps questions whose ten answers agree); right means
  equal to it. A pair is consistent when pred_original == str(int(pred_edited) + 1). Pairs whose edited prediction
  is not a number (e.g. "many") are excluded from consistency and flips, counted, and kept in the denominator as
  in the notebook. Flips split into neg->pos, pos->neg, pos->pos, neg->neg by that exact-match rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from paperzoo.errors import UserError


@dataclass(frozen=True)
class Pair:
    """One edited question with its original: the two predictions and the two lists of human answers."""

    pred_original: str
    pred_edited: str
    answers_original: Sequence[str]
    answers_edited: Sequence[str]


def vqa_accuracy(pred: str, answers: Sequence[str]) -> float:
    """Standard VQA accuracy: min(#answers equal to pred / 3, 1)."""
    return min(sum(a == pred for a in answers) / 3, 1.0)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _split(rows: list[tuple[bool, bool, bool]], n: int, out: dict) -> dict:
    """rows of (flipped, right_before, right_after) -> counts and shares of every category."""
    categories = {
        "flipped": lambda f, b, a: f,
        "same": lambda f, b, a: not f,
        "neg_to_pos": lambda f, b, a: f and not b and a,
        "pos_to_neg": lambda f, b, a: f and b and not a,
        "pos_to_pos": lambda f, b, a: f and b and a,
        "neg_to_neg": lambda f, b, a: f and not b and not a,
        "same_right": lambda f, b, a: not f and b and a,
        "same_wrong": lambda f, b, a: not f and not b and not a,
    }
    for name, test in categories.items():
        count = sum(test(*r) for r in rows)
        out[f"{name}_count"] = count
        out[name] = count / n
    return out


def flip_metrics(kind: str, pairs: Sequence[Pair]) -> dict[str, float]:
    """Counts and shares (of all pairs) of every flip category, and the accuracies, for IV or CV edits."""
    if kind not in ("iv", "cv"):
        raise UserError(f"kind must be 'iv' or 'cv', got {kind!r}")
    n = len(pairs)
    if n == 0:
        raise UserError("no edited pairs to score")
    out: dict[str, float] = {"pairs": n}
    if kind == "iv":
        rows = [(p.pred_original != p.pred_edited, p.pred_original in p.answers_edited,
                 p.pred_edited in p.answers_edited) for p in pairs]
        out["accuracy_original"] = sum(vqa_accuracy(p.pred_original, p.answers_original) for p in pairs) / n
        out["accuracy_edited"] = sum(vqa_accuracy(p.pred_edited, p.answers_edited) for p in pairs) / n
        return _split(rows, n, out)
    for p in pairs:
        if not (p.answers_original and p.answers_edited):
            raise UserError("every CV pair needs human answers for the original and the edited question")
    numeric = [p for p in pairs if _is_int(p.pred_edited)]
    rows = [(p.pred_original != str(int(p.pred_edited) + 1), p.pred_original == p.answers_original[0],
             p.pred_edited == p.answers_edited[0]) for p in numeric]
    out["excluded_non_numeric_count"] = n - len(numeric)
    out["accuracy_original"] = sum(p.pred_original == p.answers_original[0] for p in pairs) / n
    out["accuracy_edited"] = sum(p.pred_edited == p.answers_edited[0] for p in pairs) / n
    out = _split(rows, n, out)
    out["consistency"] = out["same"]
    return out


def flipped_when_right(iv: dict[str, float]) -> float:
    """Of the IV pairs whose original the model answered right, the share whose edited answer differs (pos->neg and
    pos->pos), from the counts of `flip_metrics("iv", ...)`; nan when it answered none right."""
    flipped = iv["pos_to_neg_count"] + iv["pos_to_pos_count"]
    right = flipped + iv["same_right_count"]
    return flipped / right if right else float("nan")
